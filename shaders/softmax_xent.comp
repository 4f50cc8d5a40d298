/*
 * softmax_xent.comp - fused softmax cross-entropy per row, and categorical
 * sampling as its SAMPLE mode (KILN_K_SOFTMAX_XENT,
 * lib/queue/kernels_softmax.h; reference lib/cpu/cpu_softmax.c).
 *
 * Logits x [nrows, ncls] strided; labels U: i32 class indices (INDEX,
 * and SAMPLE's output) or T probabilities (PROBS).  Per row: m = max,
 * s = sum exp(x - m), lse = m + log s; loss = lse - x[label] or
 * sum_{p != 0} p (lse - x); grad = (exp(x - m) / s - target) * scale.
 * SAMPLE: z = x * scale, u = loss[r] (an input), writes the first class
 * whose running sum of exp(z - m) exceeds u * s.
 * Layout: one workgroup per row, grid-stride over rows; max and sums through
 * a shared-memory tree (local_size_x elements of T).  SAMPLE sums
 * contiguous chunks per invocation so invocation 0 scans one chunk only.
 * Binding 0: x, 1: labels (U), 2: loss (T), 3: grad (T).
 * Tunables: workgroup size (x only).  Variants: f32_i32, f32_f32, f64_i32,
 * f64_f64.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, set = 0, binding = 0) readonly buffer X { T d[]; } x_;
layout(std430, set = 0, binding = 1) buffer Lab { U d[]; } lab_;
layout(std430, set = 0, binding = 2) buffer Loss { T d[]; } loss_;
layout(std430, set = 0, binding = 3) writeonly buffer Grad { T d[]; } grad_;

layout(push_constant, std430) uniform Params {
    int nrows, ncls, mode, want_grad;
    int off_x, off_lab, off_loss, off_grad;
    int x_sn, x_sc, lab_sn, lab_sc;
    uint scale_lo, scale_hi;
} p;

#define XENT_SAMPLE 2

shared T part[gl_WorkGroupSize.x];

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

#if defined(U_I32)
/* Invocation 0's part of SAMPLE: find the chunk where target falls (part[]
 * holds chunk sums), then the class inside it; when rounding leaves target
 * beyond the total, the last class with a nonzero term. */
int sample_scan(int xr, T zs, T m, T target)
{
    int nt = int(gl_WorkGroupSize.x);
    int chunk = (p.ncls + nt - 1) / nt;
    T acc = T(0);
    int t = 0, last_t = -1;
    for (; t < nt; t++) {
        if (part[t] > T(0))
            last_t = t;
        if (target < acc + part[t])
            break;
        acc += part[t];
    }
    if (t == nt) {
        t = last_t < 0 ? 0 : last_t;
        target = T_INF;
        acc = T(0);
    }
    int last = p.ncls - 1;
    int end = min(p.ncls, (t + 1) * chunk);
    for (int c = t * chunk; c < end; c++) {
        T e = kiln_exp(x_.d[xr + c * p.x_sc] * zs - m);
        if (e > T(0))
            last = c;
        acc += e;
        if (target < acc)
            return c;
    }
    return last;
}

/* SAMPLE mode for row r, given the row max m of z = x * zs. */
void sample_row(uint r, int xr, int lr, T zs, T m)
{
    uint lid = gl_LocalInvocationID.x;
    int nt = int(gl_WorkGroupSize.x);
    int chunk = (p.ncls + nt - 1) / nt;
    int end = min(p.ncls, (int(lid) + 1) * chunk);
    T s = T(0);
    for (int c = int(lid) * chunk; c < end; c++)
        s += kiln_exp(x_.d[xr + c * p.x_sc] * zs - m);
    part[lid] = s;
    barrier();
    if (lid == 0u) {
        T total = T(0);
        for (int t = 0; t < nt; t++)
            total += part[t];
        lab_.d[lr] = sample_scan(xr, zs, m,
                                 loss_.d[p.off_loss + int(r)] * total);
    }
    barrier();
}
#endif

void main()
{
    uint lid = gl_LocalInvocationID.x;
    int step = int(gl_WorkGroupSize.x);
    T scale = T_FROM_BITS(p.scale_lo, p.scale_hi);
    T zs = p.mode == XENT_SAMPLE ? scale : T(1);
    for (uint r = gl_WorkGroupID.x; r < uint(p.nrows); r += gl_NumWorkGroups.x) {
        int xr = p.off_x + int(r) * p.x_sn, lr = p.off_lab + int(r) * p.lab_sn;
        T m = -T_INF;
        for (int c = int(lid); c < p.ncls; c += step)
            m = max_nan(m, x_.d[xr + c * p.x_sc] * zs);
        m = group_reduce(m, true);
#if defined(U_I32)
        if (p.mode == XENT_SAMPLE) {
            sample_row(r, xr, lr, zs, m);
            continue;
        }
#endif
        T s = T(0);
        for (int c = int(lid); c < p.ncls; c += step)
            s += kiln_exp(x_.d[xr + c * p.x_sc] - m);
        s = group_reduce(s, false);
        T lse = m + kiln_log(s);
#if defined(U_I32)
        int label = lab_.d[lr];
        bool bad = label < 0 || label >= p.ncls;
        T row_loss = bad ? T_NAN : lse - x_.d[xr + (bad ? 0 : label) * p.x_sc];
#else
        int label = -1;
        bool bad = false;
        T row_loss = T(0);
        for (int c = int(lid); c < p.ncls; c += step) {
            T t = lab_.d[lr + c * p.lab_sc];
            if (t != T(0))
                row_loss += t * (lse - x_.d[xr + c * p.x_sc]);
        }
        row_loss = group_reduce(row_loss, false);
#endif
        if (lid == 0u)
            loss_.d[p.off_loss + int(r)] = row_loss;
        if (p.want_grad == 0)
            continue;
        for (int c = int(lid); c < p.ncls; c += step) {
#if defined(U_I32)
            T t = c == label ? T(1) : T(0);
#else
            T t = lab_.d[lr + c * p.lab_sc];
#endif
            T g = (kiln_exp(x_.d[xr + c * p.x_sc] - m) / s - t) * scale;
            grad_.d[p.off_grad + int(r) * p.ncls + c] = bad ? T_NAN : g;
        }
    }
}
