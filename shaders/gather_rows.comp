/*
 * gather_rows.comp - embedding lookup (KILN_K_GATHER_ROWS,
 * lib/queue/kernels_norm.h; reference lib/cpu/cpu_norm.c):
 *   out[p*cols + d] = table[off_src + v*row_stride + d*col_stride],
 *   v = idx[off_idx + p], or 0 when v is outside 0..rows-1.
 * One invocation per output element, grid-stride over n in x.
 * Binding 0: table (T), 1: indices (int), 2: out (T).
 * Tunables: workgroup size only.  Variants: f32, i32, f64.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, set = 0, binding = 0) readonly buffer Table { T d[]; } table_;
layout(std430, set = 0, binding = 1) readonly buffer Idx { int d[]; } idx_;
layout(std430, set = 0, binding = 2) writeonly buffer Out { T d[]; } out_;

/* kiln_rows_params in lib/queue/kernels_norm.h */
layout(push_constant, std430) uniform Params {
    int n;
    int rows;
    int cols;
    int positions;
    int off_src;
    int off_idx;
    int off_out;
    int row_stride;
    int col_stride;
} p;

void main()
{
    KILN_FOR_EACH(i, p.n) {
        int ii = int(i);
        int pos = ii / p.cols, col = ii % p.cols;
        int v = idx_.d[p.off_idx + pos];
        T val = T(0);
        if (v >= 0 && v < p.rows)
            val = table_.d[p.off_src + v * p.row_stride + col * p.col_stride];
        out_.d[p.off_out + ii] = val;
    }
}
