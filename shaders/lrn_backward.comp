/*
 * lrn_backward.comp - gradient of local response normalisation
 * (KILN_K_LRN_BACKWARD, lib/queue/kernels_norm.h; reference
 * lib/cpu/cpu_norm.c):
 *   dx_c = dy_c s_c^-beta - 2 alpha beta/size * x_c *
 *          sum_{j: c in W(j)} dy_j y_j / s_j,
 * W(j) = j - size/2 .. j + (size-1)/2, so j runs over c - (size-1)/2 ..
 * c + size/2.  A gather (each invocation recomputes the s_j it needs,
 * O(size^2) loads), so no atomics and no scratch buffer.
 * Layout: contiguous [outer, channels, inner]; one invocation per element,
 * grid-stride over n in x.  Binding 0: dy, 1: x, 2: y, 3: dx.
 * Tunables: workgroup size only.  Variants: f32, f64.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, set = 0, binding = 0) readonly buffer DY { T d[]; } dy_;
layout(std430, set = 0, binding = 1) readonly buffer X { T d[]; } x_;
layout(std430, set = 0, binding = 2) readonly buffer Y { T d[]; } y_;
layout(std430, set = 0, binding = 3) writeonly buffer DX { T d[]; } dx_;

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

/* s for channel c of the element at x offset plane + pos. */
T scale_at(int plane, int pos, int c, T alpha, T k)
{
    int lo = max(c - p.size / 2, 0);
    int hi = min(c + (p.size - 1) / 2, p.channels - 1);
    T sum = T(0);
    for (int j = lo; j <= hi; j++) {
        T v = x_.d[plane + j * p.inner + pos];
        sum += v * v;
    }
    return k + alpha / T(p.size) * sum;
}

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
        int plane = (ii / per) * per;
        T s = scale_at(p.off_b + plane, pos, c, alpha, k);
        int lo = max(c - (p.size - 1) / 2, 0);
        int hi = min(c + p.size / 2, p.channels - 1);
        T acc = T(0);
        for (int j = lo; j <= hi; j++) {
            int at = plane + j * p.inner + pos;
            T sj = scale_at(p.off_b + plane, pos, j, alpha, k);
            acc += dy_.d[p.off_a + at] * y_.d[p.off_c + at] / sj;
        }
        dx_.d[p.off_out + ii] =
            dy_.d[p.off_a + ii] * kiln_pow(s, -beta) -
            T(2) * alpha * beta / T(p.size) * x_.d[p.off_b + ii] * acc;
    }
}
