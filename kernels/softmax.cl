/*
 * softmax.cl - softmax / log-softmax along an axis, their backward pass,
 * and the fused softmax cross-entropy (with categorical sampling as a mode
 * of the same kernel).
 *
 * Semantics and parameter blocks: lib/queue/kernels_softmax.h, reference
 * lib/cpu/cpu_softmax.c.  Rows: row r's element j of tensor X is
 * X[off_X + outer_offset(r) + j * axis_X] over 5 outer dims.
 *
 * Layout: one workgroup per row, looping grid-stride over rows.  Each
 * work-item folds elements j = lid, lid + NTHREADS, ... into a private
 * max / sum, then the group combines them through __local part[NTHREADS]
 * (a tree; any workgroup size works, a first step folds down to a power of
 * two).  Sums accumulate in T; NaN propagates through the max.  SAMPLE
 * mode sums contiguous chunks per work-item instead, so that work-item 0
 * can find the chunk holding the drawn quantile and scan only that chunk.
 * softmax_xent is built only in programs with U (the labels' type).
 * Tunables: the workgroup size (LOCAL_X, normally a power of two).
 */

#define OUTER 5

typedef struct {
    int nrows, n, log, off_a, off_b, off_out, axis_a, axis_b, axis_out;
    int outer_shape[OUTER], outer_a[OUTER], outer_b[OUTER], outer_out[OUTER];
    uint pad[3];
} softmax_params;

int outer_offset(int r, const int *shape, const int *stride)
{
    int off = 0;
    for (int d = OUTER - 1; d >= 0; d--) {
        off += (r % shape[d]) * stride[d];
        r /= shape[d];
    }
    return off;
}

T max_nan(T a, T b)
{
    return a > b || isnan(a) ? a : b;
}

/* Largest power of two not above NTHREADS, folded at compile time. */
uint pow2_below_threads(void)
{
    uint s = 1;
    while (s * 2 <= NTHREADS)
        s *= 2;
    return s;
}

/* Combines every work-item's @v (sum, or max when @is_max) and returns the
 * result to all of them.  Every work-item of the group must call it. */
T group_reduce(__local T *part, T v, int is_max)
{
    uint lid = kiln_local_index();
    uint top = pow2_below_threads();
    part[lid] = v;
    LOCAL_BARRIER();
    if (top < NTHREADS) {
        if (lid < NTHREADS - top)
            part[lid] = is_max ? max_nan(part[lid], part[lid + top])
                               : part[lid] + part[lid + top];
        LOCAL_BARRIER();
    }
    for (uint h = top / 2; h > 0; h /= 2) {
        if (lid < h)
            part[lid] = is_max ? max_nan(part[lid], part[lid + h])
                               : part[lid] + part[lid + h];
        LOCAL_BARRIER();
    }
    T r = part[0];
    LOCAL_BARRIER(); /* part[] is reused by the next call */
    return r;
}

KILN_KERNEL void kiln_softmax(__global const T *x, __global T *y,
                              const softmax_params P)
{
    __local T part[NTHREADS];
    softmax_params p = P;
    uint lid = kiln_local_index();
    for (uint r = kiln_group_index(); r < (uint)p.nrows;
         r += kiln_group_count()) {
        int a = p.off_a + outer_offset((int)r, p.outer_shape, p.outer_a);
        int o = p.off_out + outer_offset((int)r, p.outer_shape, p.outer_out);
        T m = (T)-INFINITY;
        for (int j = (int)lid; j < p.n; j += NTHREADS)
            m = max_nan(m, x[a + j * p.axis_a]);
        m = group_reduce(part, m, 1);
        T s = 0;
        for (int j = (int)lid; j < p.n; j += NTHREADS)
            s += exp(x[a + j * p.axis_a] - m);
        s = group_reduce(part, s, 0);
        T ls = log(s);
        for (int j = (int)lid; j < p.n; j += NTHREADS) {
            T v = x[a + j * p.axis_a] - m;
            y[o + j * p.axis_out] = p.log ? v - ls : exp(v) / s;
        }
    }
}

KILN_KERNEL void kiln_softmax_backward(__global const T *y,
                                       __global const T *dy, __global T *dx,
                                       const softmax_params P)
{
    __local T part[NTHREADS];
    softmax_params p = P;
    uint lid = kiln_local_index();
    for (uint r = kiln_group_index(); r < (uint)p.nrows;
         r += kiln_group_count()) {
        int a = p.off_a + outer_offset((int)r, p.outer_shape, p.outer_a);
        int b = p.off_b + outer_offset((int)r, p.outer_shape, p.outer_b);
        int o = p.off_out + outer_offset((int)r, p.outer_shape, p.outer_out);
        T s = 0;
        for (int j = (int)lid; j < p.n; j += NTHREADS) {
            T g = dy[b + j * p.axis_b];
            s += p.log ? g : g * y[a + j * p.axis_a];
        }
        s = group_reduce(part, s, 0);
        for (int j = (int)lid; j < p.n; j += NTHREADS) {
            T g = dy[b + j * p.axis_b], v = y[a + j * p.axis_a];
            dx[o + j * p.axis_out] = p.log ? g - exp(v) * s : v * (g - s);
        }
    }
}

/* ---- softmax cross-entropy and categorical sampling ---------------------- */

#ifdef U
typedef struct {
    int nrows, ncls, mode, want_grad;
    int off_x, off_lab, off_loss, off_grad;
    int x_sn, x_sc, lab_sn, lab_sc;
    uint scale_lo, scale_hi;
    uint pad[18];
} xent_params;

#define XENT_INDEX 0
#define XENT_PROBS 1
#define XENT_SAMPLE 2

/* Work-item 0's part of SAMPLE: u * s falls in some work-item's chunk
 * (part[] holds the chunk sums); scan that chunk.  Falls back to the last
 * class with a nonzero term when rounding leaves u * s beyond the total. */
int sample_scan(__global const T *x, int xr, int sc, int ncls, T scale, T m,
                __local T *part, T target)
{
    int chunk = (ncls + NTHREADS - 1) / NTHREADS;
    T acc = 0;
    int t = 0, last_t = -1;
    for (; t < NTHREADS; t++) {
        if (part[t] > 0)
            last_t = t;
        if (target < acc + part[t])
            break;
        acc += part[t];
    }
    if (t == NTHREADS) { /* not found: take the last positive term */
        t = last_t < 0 ? 0 : last_t;
        target = (T)INFINITY;
        acc = 0;
    }
    int last = ncls - 1;
    int end = min(ncls, (t + 1) * chunk);
    for (int c = t * chunk; c < end; c++) {
        T e = exp(x[xr + c * sc] * scale - m);
        if (e > 0)
            last = c;
        acc += e;
        if (target < acc)
            return c;
    }
    return last;
}

KILN_KERNEL void kiln_softmax_xent(__global const T *x, __global U *lab,
                                   __global T *loss, __global T *grad,
                                   const xent_params P)
{
    __local T part[NTHREADS];
    xent_params p = P;
    uint lid = kiln_local_index();
    T scale = T_FROM_BITS(p.scale_lo, p.scale_hi);
    T zs = p.mode == XENT_SAMPLE ? scale : (T)1;
    for (uint r = kiln_group_index(); r < (uint)p.nrows;
         r += kiln_group_count()) {
        int xr = p.off_x + (int)r * p.x_sn, lr = p.off_lab + (int)r * p.lab_sn;
        T m = (T)-INFINITY;
        for (int c = (int)lid; c < p.ncls; c += NTHREADS)
            m = max_nan(m, x[xr + c * p.x_sc] * zs);
        m = group_reduce(part, m, 1);
        T s = 0;
#if defined(U_I32)
        if (p.mode == XENT_SAMPLE) {
            int chunk = (p.ncls + NTHREADS - 1) / NTHREADS;
            int end = min(p.ncls, ((int)lid + 1) * chunk);
            for (int c = (int)lid * chunk; c < end; c++)
                s += exp(x[xr + c * p.x_sc] * zs - m);
            part[lid] = s;
            LOCAL_BARRIER();
            if (lid == 0) {
                T total = 0;
                for (int t = 0; t < NTHREADS; t++)
                    total += part[t];
                lab[lr] = sample_scan(x, xr, p.x_sc, p.ncls, zs, m, part,
                                      loss[p.off_loss + (int)r] * total);
            }
            LOCAL_BARRIER();
            continue;
        }
#endif
        for (int c = (int)lid; c < p.ncls; c += NTHREADS)
            s += exp(x[xr + c * p.x_sc] - m);
        s = group_reduce(part, s, 0);
        T lse = m + log(s);
#if defined(U_I32)
        int label = lab[lr];
        int bad = label < 0 || label >= p.ncls;
        T row_loss = bad ? (T)NAN : lse - x[xr + (bad ? 0 : label) * p.x_sc];
#else
        int label = -1, bad = 0;
        T row_loss = 0;
        for (int c = (int)lid; c < p.ncls; c += NTHREADS) {
            T t = lab[lr + c * p.lab_sc];
            if (t != 0)
                row_loss += t * (lse - x[xr + c * p.x_sc]);
        }
        row_loss = group_reduce(part, row_loss, 0);
#endif
        if (lid == 0)
            loss[p.off_loss + (int)r] = row_loss;
        if (!p.want_grad)
            continue;
        for (int c = (int)lid; c < p.ncls; c += NTHREADS) {
#if defined(U_I32)
            T t = c == label ? (T)1 : (T)0;
#else
            T t = lab[lr + c * p.lab_sc];
#endif
            T g = (exp(x[xr + c * p.x_sc] - m) / s - t) * scale;
            grad[p.off_grad + (int)r * p.ncls + c] = bad ? (T)NAN : g;
        }
    }
}
#endif
