/*
 * argreduce.comp - index of the first largest / smallest element over
 * strided inner dimensions (KILN_K_ARGREDUCE, lib/queue/kernels.h).
 *
 * Same decomposition as reduce.comp: one workgroup per output, outputs
 * grid-stride in x.  The answer is the first NaN if there is one (NumPy),
 * else the first extreme element; ties go to the lower index, so partial
 * results combine in any order.  0 when nothing is reduced.
 * Binding 0: in (T), 1: out (i32).  Shared memory: local_size_x values and
 * indices.  Tunables: workgroup size (x only).
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, set = 0, binding = 0) readonly buffer In { T d[]; } in_;
layout(std430, set = 0, binding = 1) writeonly buffer Out { int d[]; } out_;

layout(push_constant, std430) uniform Params {
    int nout;
    int nred;
    int op;
    int off_in;
    int off_out;
    int outer_shape[KILN_KDIMS];
    int outer_stride[KILN_KDIMS];
    int red_shape[KILN_KDIMS];
    int red_stride[KILN_KDIMS];
    uint scale_lo, scale_hi;
} p;

shared T best_value[gl_WorkGroupSize.x];
shared int best_index[gl_WorkGroupSize.x];

/* Does (v, i) beat (w, j)?  Index -1 means "nothing yet". */
bool beats(int op, T v, int i, T w, int j)
{
    if (i < 0)
        return false;
    if (j < 0)
        return true;
    bool vn = T_ISNAN(v), wn = T_ISNAN(w);
    if (vn || wn)
        return vn && (!wn || i < j);
    if (v == w)
        return i < j;
    return op == 0 ? v > w : v < w;
}

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint half_size = 1u;
    while (half_size < gl_WorkGroupSize.x)
        half_size <<= 1;
    for (uint o = gl_WorkGroupID.x; o < uint(p.nout); o += gl_NumWorkGroups.x) {
        int base = p.off_in + kiln_offset(o, p.outer_shape, p.outer_stride);
        T bv = T(0);
        int bi = -1;
        for (uint r = lid; r < uint(p.nred); r += gl_WorkGroupSize.x) {
            T v = in_.d[base + kiln_offset(r, p.red_shape, p.red_stride)];
            if (beats(p.op, v, int(r), bv, bi)) {
                bv = v;
                bi = int(r);
            }
        }
        best_value[lid] = bv;
        best_index[lid] = bi;
        barrier();
        for (uint s = half_size >> 1; s > 0u; s >>= 1) {
            if (lid < s && lid + s < gl_WorkGroupSize.x &&
                beats(p.op, best_value[lid + s], best_index[lid + s],
                      best_value[lid], best_index[lid])) {
                best_value[lid] = best_value[lid + s];
                best_index[lid] = best_index[lid + s];
            }
            barrier();
        }
        if (lid == 0u)
            out_.d[p.off_out + int(o)] = max(best_index[0], 0);
        barrier();
    }
}
