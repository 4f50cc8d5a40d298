/*
 * binary.comp - out[i] = op(a[strided], b[strided]), out contiguous
 * (KILN_K_BINARY).
 *
 * Ops (enum kiln_binary_op): ADD SUB MUL DIV MIN MAX POW EQ NE LT LE GT GE.
 * Integers: wrapping arithmetic, DIV truncates, x/0 = 0, INT_MIN/-1 =
 * INT_MIN; POW is float only.  Floats: MIN/MAX give NaN when either operand
 * is NaN; POW follows C (common.glsl).  Comparisons give 1 or 0 in T.
 * The op bodies are in elementwise_ops.glsl (shared with fused.comp).
 * Binding 0: a, 1: b, 2: out.  Grid-stride over n in x.  Tunables:
 * workgroup size only.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "elementwise_ops.glsl"

layout(std430, set = 0, binding = 0) readonly buffer A { T d[]; } a_;
layout(std430, set = 0, binding = 1) readonly buffer B { T d[]; } b_;
layout(std430, set = 0, binding = 2) writeonly buffer Out { T d[]; } out_;

layout(push_constant, std430) uniform Params {
    int n;
    int op;
    int off_a;
    int off_b;
    int off_out;
    int shape[KILN_KDIMS];
    int stride_a[KILN_KDIMS];
    int stride_b[KILN_KDIMS];
} p;

/* Dense operands skip the index decomposition. */
void main()
{
    if (kiln_is_dense(p.shape, p.stride_a) &&
        kiln_is_dense(p.shape, p.stride_b)) {
        KILN_FOR_EACH(i, p.n)
            out_.d[p.off_out + int(i)] =
                kiln_binary_apply(p.op, a_.d[p.off_a + int(i)],
                                  b_.d[p.off_b + int(i)]);
        return;
    }
    KILN_FOR_EACH(i, p.n) {
        T a = a_.d[p.off_a + kiln_offset(i, p.shape, p.stride_a)];
        T b = b_.d[p.off_b + kiln_offset(i, p.shape, p.stride_b)];
        out_.d[p.off_out + int(i)] = kiln_binary_apply(p.op, a, b);
    }
}
