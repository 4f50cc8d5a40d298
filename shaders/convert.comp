/*
 * convert.comp - out[strided] = (U) in[strided] (KILN_K_CONVERT).
 *
 * T is the input type, U the output type.  Float to int: NaN -> 0,
 * saturate at the int32 range, truncate toward zero; int to float and
 * f64 to f32 round to nearest.  Binding 0: in (T), 1: out (U).
 * Grid-stride over n in x.  Tunables: workgroup size only.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, set = 0, binding = 0) readonly buffer In { T d[]; } in_;
layout(std430, set = 0, binding = 1) writeonly buffer Out { U d[]; } out_;

layout(push_constant, std430) uniform Params {
    int n;
    int off_in;
    int off_out;
    int shape[KILN_KDIMS];
    int stride_in[KILN_KDIMS];
    int stride_out[KILN_KDIMS];
} p;

U convert(T v)
{
#if defined(U_I32) && !defined(T_I32)
    return kiln_to_i32(v);
#else
    return U(v);
#endif
}

void main()
{
    if (kiln_is_dense(p.shape, p.stride_in) &&
        kiln_is_dense(p.shape, p.stride_out)) {
        KILN_FOR_EACH(i, p.n)
            out_.d[p.off_out + int(i)] = convert(in_.d[p.off_in + int(i)]);
        return;
    }
    KILN_FOR_EACH(i, p.n) {
        T v = in_.d[p.off_in + kiln_offset(i, p.shape, p.stride_in)];
        out_.d[p.off_out + kiln_offset(i, p.shape, p.stride_out)] = convert(v);
    }
}
