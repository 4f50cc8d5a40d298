/*
 * reduce.comp - sum / max / min over strided inner dimensions
 * (KILN_K_REDUCE, lib/queue/kernels.h).
 *
 * One workgroup reduces one output at a time and the groups loop over the
 * outputs grid-stride (x); the fold and the tree: reduce_common.glsl.
 * Float SUM is multiplied by `scale` (the mean).
 * Binding 0: in (T), 1: out (T).  Shared memory: local_size_x elements.
 * Tunables: workgroup size (x only).
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, set = 0, binding = 0) readonly buffer In { T d[]; } in_;
layout(std430, set = 0, binding = 1) writeonly buffer Out { T d[]; } out_;

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
    int split;
} p;

#include "reduce_common.glsl"

/* Whether at most one reduced dimension has size > 1 (the plan merges
 * contiguous ones), and then its stride in @step (0 for none). */
bool single_step(out int step)
{
    int found = 0;
    step = 0;
    for (int d = 0; d < KILN_KDIMS; d++)
        if (p.red_shape[d] != 1) {
            step = p.red_stride[d];
            found++;
        }
    return found <= 1;
}

/* This invocation's share of r0 <= r < r1 from @base. */
T fold(int op, int base, uint lid, uint r0, uint r1)
{
    T acc = fold_identity(op), c = T(0);
    int step;
    if (single_step(step)) /* no divisions per element */
        for (uint r = r0 + lid; r < r1; r += gl_WorkGroupSize.x)
            fold_add(op, acc, c, in_.d[base + int(r) * step]);
    else
        for (uint r = r0 + lid; r < r1; r += gl_WorkGroupSize.x)
            fold_add(op, acc, c,
                     in_.d[base + kiln_offset(r, p.red_shape, p.red_stride)]);
    return fold_result(op, acc, c);
}

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint split = uint(max(p.split, 1));
    for (uint v = gl_WorkGroupID.x; v < uint(p.nout) * split;
         v += gl_NumWorkGroups.x) {
        uint r0, r1;
        uint o = reduce_slice(v, split, uint(p.nred), r0, r1);
        int base = p.off_in + kiln_offset(o, p.outer_shape, p.outer_stride);
        T r = group_combine(p.op, fold(p.op, base, lid, r0, r1), lid);
        if (lid == 0u)
            out_.d[p.off_out + int(v)] =
                reduce_finish(p.op, r, p.scale_lo, p.scale_hi);
    }
}
