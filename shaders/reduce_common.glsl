/*
 * reduce_common.glsl - the fold and the workgroup tree of reduce.comp,
 * shared with fused_reduce.comp so that a fused reduction combines in the
 * same order, bit for bit.
 *
 * Each invocation folds every local_size_x-th element (float sums with
 * Kahan compensation), then the group combines the partial results in
 * shared memory (a tree; any group size works, powers of two are
 * fastest).  MAX/MIN propagate NaN; integer SUM wraps.
 * op: 0 SUM, 1 MAX, 2 MIN (enum kiln_reduce_kop).
 */
shared T partial[gl_WorkGroupSize.x];

#if defined(T_I32)
#define LOWEST KILN_INT_MIN
#define HIGHEST KILN_INT_MAX
#else
#define LOWEST (-T_INF)
#define HIGHEST T_INF
#endif

T combine(int op, T a, T b)
{
    if (op == 0)
        return a + b;
    if (T_ISNAN(a) || T_ISNAN(b))
        return T_ISNAN(a) ? a : b;
    if (op == 1)
        return a > b ? a : b;
    return a < b ? a : b;
}

/* An invocation's running fold: acc and, for float sums, the low bits
 * it lost (c). */
T fold_identity(int op)
{
    return op == 0 ? T(0) : op == 1 ? LOWEST : HIGHEST;
}

void fold_add(int op, inout T acc, inout T c, T v)
{
#if !defined(T_I32)
    if (op == 0) { /* Kahan */
        precise T y = v - c;
        precise T t = acc + y;
        precise T lost = (t - acc) - y;
        c = isinf(t) ? T(0) : lost; /* keep infinities exact */
        acc = t;
        return;
    }
#endif
    acc = combine(op, acc, v);
}

T fold_result(int op, T acc, T c)
{
#if !defined(T_I32)
    if (op == 0)
        return isinf(acc) || isnan(acc) ? acc : acc - c;
#endif
    return acc;
}

/* The group's combination of every invocation's @mine, valid in
 * invocation 0; every invocation must call it. */
T group_combine(int op, T mine, uint lid)
{
    uint half_size = 1u;
    while (half_size < gl_WorkGroupSize.x)
        half_size <<= 1;
    partial[lid] = mine;
    barrier();
    for (uint s = half_size >> 1; s > 0u; s >>= 1) {
        if (lid < s && lid + s < gl_WorkGroupSize.x)
            partial[lid] = combine(op, partial[lid], partial[lid + s]);
        barrier();
    }
    T r = partial[0];
    barrier(); /* partial[0] is read before the next output reuses it */
    return r;
}

/* Slice @v of a reduction split @split ways (lib/queue/kernels.h): its
 * output, and the range [r0, r1) of r it folds. */
uint reduce_slice(uint v, uint split, uint nred, out uint r0, out uint r1)
{
    uint chunk = split > 1u ? (nred + split - 1u) / split : nred;
    uint s = split > 1u ? v % split : 0u;
    r0 = s * chunk;
    r1 = min(nred, r0 + chunk);
    return split > 1u ? v / split : v;
}

/* The stored result: a float sum times the scale (the mean). */
T reduce_finish(int op, T r, uint scale_lo, uint scale_hi)
{
#if !defined(T_I32)
    if (op == 0)
        r *= T_FROM_BITS(scale_lo, scale_hi);
#endif
    return r;
}
