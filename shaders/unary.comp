/*
 * unary.comp - out[i] = op(in[strided]), out contiguous (KILN_K_UNARY).
 *
 * Ops (enum kiln_unary_op): NEG ABS SQUARE RELU for every type; EXP LOG
 * SQRT SIGMOID TANH for float types only (the double versions are in
 * common.glsl).  Integers wrap like the C reference's unsigned arithmetic.
 * The op bodies are in elementwise_ops.glsl (shared with fused.comp).
 * Binding 0: in, 1: out.  Grid-stride over n in x.  Tunables: workgroup
 * size only.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "elementwise_ops.glsl"

layout(std430, set = 0, binding = 0) readonly buffer In { T d[]; } in_;
layout(std430, set = 0, binding = 1) writeonly buffer Out { T d[]; } out_;

layout(push_constant, std430) uniform Params {
    int n;
    int op;
    int off_in;
    int off_out;
    int shape[KILN_KDIMS];
    int stride_in[KILN_KDIMS];
} p;

/* Dense operands skip the index decomposition. */
void main()
{
    if (kiln_is_dense(p.shape, p.stride_in)) {
        KILN_FOR_EACH(i, p.n)
            out_.d[p.off_out + int(i)] =
                kiln_unary_apply(p.op, in_.d[p.off_in + int(i)]);
        return;
    }
    KILN_FOR_EACH(i, p.n)
        out_.d[p.off_out + int(i)] =
            kiln_unary_apply(p.op, in_.d[p.off_in +
                                         kiln_offset(i, p.shape, p.stride_in)]);
}
