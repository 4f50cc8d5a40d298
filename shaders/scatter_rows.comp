/*
 * scatter_rows.comp - embedding gradient (KILN_K_SCATTER_ROWS,
 * lib/queue/kernels_norm.h; reference lib/cpu/cpu_norm.c):
 *   out[v*cols + d] = sum over p = 0, 1, ... with idx[p] == v of
 *   dy[off_src + p*cols + d], in ascending p.
 * One invocation per output element scans every index: O(rows * cols *
 * positions) work, but no atomics and the same bits on every run (a
 * sort-by-index version would cut the work; not needed at course sizes).
 * Grid-stride over n in x.  Binding 0: dy (T), 1: indices (int), 2: out.
 * Tunables: workgroup size only.  Variants: f32, f64.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, set = 0, binding = 0) readonly buffer DY { T d[]; } dy_;
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
        int v = ii / p.cols, col = ii % p.cols;
        T acc = T(0);
        for (int pos = 0; pos < p.positions; pos++)
            if (idx_.d[p.off_idx + pos] == v)
                acc += dy_.d[p.off_src + pos * p.cols + col];
        out_.d[p.off_out + ii] = acc;
    }
}
