/*
 * elementwise.cl - fill, convert, unary, binary and select.
 *
 * Semantics are those of lib/cpu/cpu_kernels.c (parameter blocks and op
 * codes in lib/queue/kernels.h): strided inputs over 6 dimensions, outputs
 * contiguous (FILL and CONVERT write strided).  Integer arithmetic wraps
 * (computed unsigned); integer division truncates, x/0 = 0 and
 * INT_MIN/-1 = INT_MIN; float min/max return NaN when either side is NaN;
 * comparisons give 1 or 0 in T; float to int conversion maps NaN to 0,
 * saturates and truncates.
 *
 * The op bodies (kiln_unary_op, kiln_binary_op) are in common.cl, shared
 * with the generated fused kernels (lib/opencl/cl_fused.c).
 *
 * Layout: one work-item per element, grid-stride over n, any grid.
 * Tunables: the workgroup size only (LOCAL_X/Y/Z); C0..C3 unused.
 */

/* ---- fill --------------------------------------------------------------- */

typedef struct {
    int n, off_out;
    int shape[KDIMS], stride_out[KDIMS];
    uint value_lo, value_hi;
    uint pad[16];
} fill_params;

/* The value is stored as the bits given, so no NaN payload or int value is
 * changed on the way. */
#if defined(T_F64)
#define BITS ulong
#define FILL_BITS(p) (((ulong)(p).value_hi << 32) | (ulong)(p).value_lo)
#else
#define BITS uint
#define FILL_BITS(p) ((p).value_lo)
#endif

KILN_KERNEL void kiln_fill(__global T *out_, const fill_params P)
{
    fill_params p = P;
    __global BITS *out = (__global BITS *)out_;
    BITS v = FILL_BITS(p);
    for (uint i = kiln_global_index(); i < (uint)p.n;
         i += kiln_global_count())
        out[p.off_out + kiln_offset((int)i, p.shape, p.stride_out)] = v;
}

/* ---- convert ------------------------------------------------------------ */

#ifdef U
typedef struct {
    int n, off_in, off_out;
    int shape[KDIMS], stride_in[KDIMS], stride_out[KDIMS];
    uint pad[11];
} convert_params;

U convert_value(T x)
{
#if defined(U_I32) && !defined(T_I32)
    /* Explicit rules: convert_int_sat's NaN result is not specified. */
    if (isnan(x))
        return 0;
    if (x >= (T)2147483647.0)
        return INT_MAX;
    if (x <= (T)-2147483648.0)
        return INT_MIN;
    return (int)x;
#else
    return (U)x; /* int or float to float: round to nearest even */
#endif
}

KILN_KERNEL void kiln_convert(__global const T *in, __global U *out,
                              const convert_params P)
{
    if (kiln_is_dense(P.shape, P.stride_in) &&
        kiln_is_dense(P.shape, P.stride_out)) {
        __global const T *src = in + P.off_in;
        __global U *dst = out + P.off_out;
        const uint n = (uint)P.n;
        for (uint i = kiln_global_index(); i < n; i += kiln_global_count())
            dst[i] = convert_value(src[i]);
        return;
    }
    convert_params p = P;
    for (uint i = kiln_global_index(); i < (uint)p.n;
         i += kiln_global_count()) {
        int src = p.off_in + kiln_offset((int)i, p.shape, p.stride_in);
        int dst = p.off_out + kiln_offset((int)i, p.shape, p.stride_out);
        out[dst] = convert_value(in[src]);
    }
}
#endif /* U */

/* ---- unary -------------------------------------------------------------- */

typedef struct {
    int n, op, off_in, off_out;
    int shape[KDIMS], stride_in[KDIMS];
    uint pad[16];
} unary_params;

/* Dense operands: one loop per op, chosen outside the loop, so each loop
 * body is branch-free and a CPU implementation (PoCL) vectorises it; the
 * op is not a build constant, which would multiply program builds. */
#define DENSE_UNARY(OP)                                                     \
    case OP:                                                                \
        for (uint i = kiln_global_index(); i < n; i += kiln_global_count()) \
            dst[i] = kiln_unary_op(OP, src[i]);                             \
        return;

KILN_KERNEL void kiln_unary(__global const T *in, __global T *out,
                            const unary_params P)
{
    if (kiln_is_dense(P.shape, P.stride_in)) {
        __global const T *src = in + P.off_in;
        __global T *dst = out + P.off_out;
        const uint n = (uint)P.n;
        switch (P.op) {
            DENSE_UNARY(0) DENSE_UNARY(1) DENSE_UNARY(2) DENSE_UNARY(3)
#if T_FLOAT
            DENSE_UNARY(4) DENSE_UNARY(5) DENSE_UNARY(6) DENSE_UNARY(7)
            DENSE_UNARY(8)
#endif
        }
        return;
    }
    unary_params p = P;
    for (uint i = kiln_global_index(); i < (uint)p.n;
         i += kiln_global_count()) {
        int src = p.off_in + kiln_offset((int)i, p.shape, p.stride_in);
        out[p.off_out + (int)i] = kiln_unary_op(p.op, in[src]);
    }
}

/* ---- binary ------------------------------------------------------------- */

typedef struct {
    int n, op, off_a, off_b, off_out;
    int shape[KDIMS], stride_a[KDIMS], stride_b[KDIMS];
    uint pad[9];
} binary_params;

/* As for unary: one branch-free loop per op on dense operands. */
#define DENSE_BINARY(OP)                                                    \
    case OP:                                                                \
        for (uint i = kiln_global_index(); i < n; i += kiln_global_count()) \
            po[i] = kiln_binary_op(OP, pa[i], pb[i]);                       \
        return;

KILN_KERNEL void kiln_binary(__global const T *a, __global const T *b,
                             __global T *out, const binary_params P)
{
    if (kiln_is_dense(P.shape, P.stride_a) &&
        kiln_is_dense(P.shape, P.stride_b)) {
        __global const T *pa = a + P.off_a, *pb = b + P.off_b;
        __global T *po = out + P.off_out;
        const uint n = (uint)P.n;
        switch (P.op) {
            DENSE_BINARY(0) DENSE_BINARY(1) DENSE_BINARY(2) DENSE_BINARY(3)
            DENSE_BINARY(4) DENSE_BINARY(5) DENSE_BINARY(6) DENSE_BINARY(7)
            DENSE_BINARY(8) DENSE_BINARY(9) DENSE_BINARY(10) DENSE_BINARY(11)
            DENSE_BINARY(12)
        }
        return;
    }
    binary_params p = P;
    for (uint i = kiln_global_index(); i < (uint)p.n;
         i += kiln_global_count()) {
        int ia = p.off_a + kiln_offset((int)i, p.shape, p.stride_a);
        int ib = p.off_b + kiln_offset((int)i, p.shape, p.stride_b);
        out[p.off_out + (int)i] = kiln_binary_op(p.op, a[ia], b[ib]);
    }
}

/* ---- select ------------------------------------------------------------- */

typedef struct {
    int n, off_c, off_a, off_b, off_out;
    int shape[KDIMS], stride_c[KDIMS], stride_a[KDIMS], stride_b[KDIMS];
    uint pad[3];
} select_params;

/* Values are moved as bits: a NaN payload survives like in the reference. */
KILN_KERNEL void kiln_select(__global const T *c, __global const T *a_,
                             __global const T *b_, __global T *out_,
                             const select_params P)
{
    select_params p = P;
    __global const BITS *a = (__global const BITS *)a_;
    __global const BITS *b = (__global const BITS *)b_;
    __global BITS *out = (__global BITS *)out_;
    for (uint i = kiln_global_index(); i < (uint)p.n;
         i += kiln_global_count()) {
        int ic = p.off_c + kiln_offset((int)i, p.shape, p.stride_c);
        BITS v;
        if (c[ic] != (T)0)
            v = a[p.off_a + kiln_offset((int)i, p.shape, p.stride_a)];
        else
            v = b[p.off_b + kiln_offset((int)i, p.shape, p.stride_b)];
        out[p.off_out + (int)i] = v;
    }
}
