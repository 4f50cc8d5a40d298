/*
 * softmax_backward.comp - gradient of softmax / log-softmax along an axis
 * (KILN_K_SOFTMAX_BACKWARD, lib/queue/kernels_softmax.h; reference
 * lib/cpu/cpu_softmax.c):
 *   softmax:     dx = y * (dy - sum(dy * y))
 *   log-softmax: dx = dy - exp(y) * sum(dy)
 * Rows as in softmax.comp: one workgroup per row, grid-stride over rows,
 * the sum through a shared-memory tree (local_size_x elements of T).
 * Binding 0: y, 1: dy, 2: dx.  Tunables: workgroup size (x only).
 * Variants: f32, f64.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, set = 0, binding = 0) readonly buffer Y { T d[]; } y_;
layout(std430, set = 0, binding = 1) readonly buffer DY { T d[]; } dy_;
layout(std430, set = 0, binding = 2) writeonly buffer DX { T d[]; } dx_;

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
        int b = p.off_b + outer_offset(r, p.outer_b);
        int o = p.off_out + outer_offset(r, p.outer_out);
        T s = T(0);
        for (int j = int(lid); j < p.n; j += step) {
            T g = dy_.d[b + j * p.axis_b];
            s += p.log_ != 0 ? g : g * y_.d[a + j * p.axis_a];
        }
        s = group_reduce(s, false);
        for (int j = int(lid); j < p.n; j += step) {
            T g = dy_.d[b + j * p.axis_b], v = y_.d[a + j * p.axis_a];
            dx_.d[o + j * p.axis_out] =
                p.log_ != 0 ? g - kiln_exp(v) * s : v * (g - s);
        }
    }
}
