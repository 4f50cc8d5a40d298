/*
 * softmax.comp - softmax / log-softmax along an axis (KILN_K_SOFTMAX,
 * lib/queue/kernels_softmax.h; reference lib/cpu/cpu_softmax.c).
 *
 * Row r's element j of X is X[off_X + outer_offset(r) + j * axis_X] over
 * 5 outer dims.  m = max (NaN propagates), s = sum exp(x - m);
 * y = exp(x - m) / s, or x - m - log(s) with `log`.
 * Layout: one workgroup per row, looping grid-stride over rows; each
 * invocation folds j = lid, lid + size, ..., then a tree in shared memory
 * (local_size_x elements of T; any size works).  exp/log are common.glsl's
 * (GLSL has no double exp, and its float exp is loose).
 * Binding 0: x, 1: y.  Tunables: workgroup size (x only).
 * Variants: f32, f64.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, set = 0, binding = 0) readonly buffer X { T d[]; } x_;
layout(std430, set = 0, binding = 1) writeonly buffer Y { T d[]; } y_;

layout(push_constant, std430) uniform Params {
    int nrows, n, log_, off_a, off_b, off_out, axis_a, axis_b, axis_out;
    int outer_shape[5], outer_a[5], outer_b[5], outer_out[5];
} p;

shared T part[gl_WorkGroupSize.x];

int outer_offset(uint r, int stride[5])
{
    int off = 0;
    for (int d = 4; d >= 0; d--) {
        uint s = uint(p.outer_shape[d]);
        off += int(r % s) * stride[d];
        r /= s;
    }
    return off;
}

T max_nan(T a, T b)
{
    return a > b || isnan(a) ? a : b;
}

/* Every invocation's v combined (sum, or max), returned to all. */
T group_reduce(T v, bool is_max)
{
    uint lid = gl_LocalInvocationID.x;
    uint half_size = 1u;
    while (half_size < gl_WorkGroupSize.x)
        half_size <<= 1;
    part[lid] = v;
    barrier();
    for (uint s = half_size >> 1; s > 0u; s >>= 1) {
        if (lid < s && lid + s < gl_WorkGroupSize.x)
            part[lid] = is_max ? max_nan(part[lid], part[lid + s])
                               : part[lid] + part[lid + s];
        barrier();
    }
    T r = part[0];
    barrier(); /* part[] is reused by the next call */
    return r;
}

void main()
{
    uint lid = gl_LocalInvocationID.x;
    int step = int(gl_WorkGroupSize.x);
    for (uint r = gl_WorkGroupID.x; r < uint(p.nrows); r += gl_NumWorkGroups.x) {
        int a = p.off_a + outer_offset(r, p.outer_a);
        int o = p.off_out + outer_offset(r, p.outer_out);
        T m = -T_INF;
        for (int j = int(lid); j < p.n; j += step)
            m = max_nan(m, x_.d[a + j * p.axis_a]);
        m = group_reduce(m, true);
        T s = T(0);
        for (int j = int(lid); j < p.n; j += step)
            s += kiln_exp(x_.d[a + j * p.axis_a] - m);
        s = group_reduce(s, false);
        T ls = kiln_log(s);
        for (int j = int(lid); j < p.n; j += step) {
            T v = x_.d[a + j * p.axis_a] - m;
            y_.d[o + j * p.axis_out] = p.log_ != 0 ? v - ls : kiln_exp(v) / s;
        }
    }
}
