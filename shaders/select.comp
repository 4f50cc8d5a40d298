/*
 * select.comp - out[i] = c[strided] != 0 ? a[strided] : b[strided], out
 * contiguous (KILN_K_SELECT).
 *
 * The condition is read as T (NaN counts as true, -0.0 as false, as in C);
 * a and b are copied as bits (uint or uvec2), exactly.  Binding 0: c,
 * 1: a, 2: b, 3: out.  Grid-stride over n in x.  Tunables: workgroup size.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

#if defined(T_F64)
#define BITS uvec2
#else
#define BITS uint
#endif

layout(std430, set = 0, binding = 0) readonly buffer C { T d[]; } c_;
layout(std430, set = 0, binding = 1) readonly buffer A { BITS d[]; } a_;
layout(std430, set = 0, binding = 2) readonly buffer B { BITS d[]; } b_;
layout(std430, set = 0, binding = 3) writeonly buffer Out { BITS d[]; } out_;

layout(push_constant, std430) uniform Params {
    int n;
    int off_c;
    int off_a;
    int off_b;
    int off_out;
    int shape[KILN_KDIMS];
    int stride_c[KILN_KDIMS];
    int stride_a[KILN_KDIMS];
    int stride_b[KILN_KDIMS];
} p;

void main()
{
    KILN_FOR_EACH(i, p.n) {
        T c = c_.d[p.off_c + kiln_offset(i, p.shape, p.stride_c)];
        BITS v;
        if (!(c == T(0)))
            v = a_.d[p.off_a + kiln_offset(i, p.shape, p.stride_a)];
        else
            v = b_.d[p.off_b + kiln_offset(i, p.shape, p.stride_b)];
        out_.d[p.off_out + int(i)] = v;
    }
}
