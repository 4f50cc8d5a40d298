/*
 * fill.comp - out[strided] = value (KILN_K_FILL, lib/queue/kernels.h).
 *
 * The value arrives as T's bits and is stored as bits (uint or uvec2), so
 * every payload, NaNs included, is written exactly and the f64 variant
 * needs no double arithmetic.  Binding 0: out.  Grid-stride over n in x.
 * Tunables: workgroup size only.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

#if defined(T_F64)
#define BITS uvec2
#else
#define BITS uint
#endif

layout(std430, set = 0, binding = 0) writeonly buffer Out { BITS d[]; } out_;

layout(push_constant, std430) uniform Params {
    int n;
    int off_out;
    int shape[KILN_KDIMS];
    int stride_out[KILN_KDIMS];
    uint value_lo, value_hi;
} p;

void main()
{
#if defined(T_F64)
    BITS v = uvec2(p.value_lo, p.value_hi);
#else
    BITS v = p.value_lo;
#endif
    KILN_FOR_EACH(i, p.n)
        out_.d[p.off_out + kiln_offset(i, p.shape, p.stride_out)] = v;
}
