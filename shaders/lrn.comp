/*
 * lrn.comp - local response normalisation across channels (KILN_K_LRN,
 * lib/queue/kernels_norm.h; reference lib/cpu/cpu_norm.c):
 *   y_c = x_c * s_c^-beta,  s_c = k + alpha/size * sum_{j in W(c)} x_j^2,
 *   W(c) = c - size/2 .. c + (size-1)/2, clipped to the channels.
 * Layout: contiguous [outer, channels, inner]; one invocation per element,
 * grid-stride over n in x.  Binding 0: x, 1: y.  pow is common.glsl's
 * kiln_pow (GLSL has no double pow, and its float pow is loose).
 * Tunables: workgroup size only.  Variants: f32, f64.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, set = 0, binding = 0) readonly buffer X { T d[]; } x_;
layout(std430, set = 0, binding = 1) writeonly buffer Y { T d[]; } y_;

/* kiln_lrn_params in lib/queue/kernels_norm.h */
layout(push_constant, std430) uniform Params {
    int n;
    int channels;
    int inner;
    int size;
    int off_a;
    int off_b;
    int off_c;
    int off_out;
    uint alpha_lo, alpha_hi;
    uint beta_lo, beta_hi;
    uint k_lo, k_hi;
} p;

void main()
{
    T alpha = T_FROM_BITS(p.alpha_lo, p.alpha_hi);
    T beta = T_FROM_BITS(p.beta_lo, p.beta_hi);
    T k = T_FROM_BITS(p.k_lo, p.k_hi);
    int per = p.channels * p.inner;
    KILN_FOR_EACH(i, p.n) {
        int ii = int(i);
        int pos = ii % p.inner;
        int c = (ii / p.inner) % p.channels;
        int plane = p.off_a + (ii / per) * per;
        int lo = max(c - p.size / 2, 0);
        int hi = min(c + (p.size - 1) / 2, p.channels - 1);
        T sum = T(0);
        for (int j = lo; j <= hi; j++) {
            T v = x_.d[plane + j * p.inner + pos];
            sum += v * v;
        }
        T s = k + alpha / T(p.size) * sum;
        y_.d[p.off_out + ii] = x_.d[p.off_a + ii] * kiln_pow(s, -beta);
    }
}
