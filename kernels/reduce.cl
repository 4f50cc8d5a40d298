/*
 * reduce.cl - sum / max / min and argmax / argmin over strided dimensions.
 *
 * Semantics of lib/cpu/cpu_kernels_reduce.c: output o combines the nred
 * elements in[off_in + outer_offset(o) + red_offset(r)].  SUM is scaled by
 * `scale` for float T (the mean); integer sums wrap.  A NaN makes MAX, MIN
 * (and SUM) NaN.  ARGMAX/ARGMIN give the index r of the first extreme
 * element; the first NaN wins; an empty reduction gives 0.
 *
 * Layout: one workgroup per output, looping grid-stride over outputs; each
 * work-item folds r = lid, lid + NTHREADS, ... serially, then a tree in
 * __local memory (any workgroup size: a first step folds down to a power
 * of two).  Float sums accumulate in T: the reference sums in double, so
 * compare float results with a tolerance that grows with nred.
 * Tunables: the workgroup size (LOCAL_X, normally a power of two).
 */

typedef struct {
    int nout, nred, op, off_in, off_out;
    int outer_shape[KDIMS], outer_stride[KDIMS];
    int red_shape[KDIMS], red_stride[KDIMS];
    uint scale_lo, scale_hi;
    int split;
} reduce_params;

#if T_FLOAT
#define T_LOWEST ((T)-INFINITY)
#define T_HIGHEST ((T)INFINITY)
#else
#define T_LOWEST INT_MIN
#define T_HIGHEST INT_MAX
#endif

T reduce_identity(int op)
{
    return op == 0 ? (T)0 : op == 1 ? T_LOWEST : T_HIGHEST;
}

/* Combines two partial results; NaN on either side wins for MAX/MIN. */
T reduce_combine(int op, T a, T b)
{
#if T_FLOAT
    if (op == 0)
        return a + b;
    if (op == 1)
        return a > b || isnan(a) ? a : b;
    return a < b || isnan(a) ? a : b;
#else
    if (op == 0)
        return as_int(as_uint(a) + as_uint(b));
    return op == 1 ? max(a, b) : min(a, b);
#endif
}

/* Largest power of two not above NTHREADS, folded at compile time. */
uint pow2_below_threads(void)
{
    uint s = 1;
    while (s * 2 <= NTHREADS)
        s *= 2;
    return s;
}

/* The workgroup's combination of its work-items' partial results (a tree
 * in __local @part), returned to every work-item.  Shared by kiln_reduce
 * and the generated kiln_fused_reduce (lib/opencl/cl_fused.c), so both
 * combine in the same order.  Every work-item must call it. */
T reduce_group(int op, T acc, __local T *part, uint lid)
{
    uint top = pow2_below_threads();
    part[lid] = acc;
    LOCAL_BARRIER();
    if (top < NTHREADS) {
        if (lid < NTHREADS - top)
            part[lid] = reduce_combine(op, part[lid], part[lid + top]);
        LOCAL_BARRIER();
    }
    for (uint h = top / 2; h > 0; h /= 2) {
        if (lid < h)
            part[lid] = reduce_combine(op, part[lid], part[lid + h]);
        LOCAL_BARRIER();
    }
    T v = part[0];
    LOCAL_BARRIER(); /* part[] is reused by the next output */
    return v;
}

/* The stored result: a float sum times the scale (the mean). */
T reduce_finish(int op, T v, uint scale_lo, uint scale_hi)
{
#if T_FLOAT
    if (op == 0)
        v *= T_FROM_BITS(scale_lo, scale_hi);
#endif
    return v;
}

/* Slice @v of a reduction split @split ways (kernels.h): its output and
 * the range [*r0, *r1) of r it folds. */
uint reduce_slice(uint v, uint split, uint nred, uint *r0, uint *r1)
{
    uint chunk = split > 1 ? (nred + split - 1) / split : nred;
    uint s = split > 1 ? v % split : 0;
    *r0 = s * chunk;
    *r1 = min(nred, *r0 + chunk);
    return split > 1 ? v / split : v;
}

/* Whether at most one reduced dimension has size > 1 (the plan merges
 * contiguous ones), and then its stride in *step (0 for none). */
int single_step(const int *shape, const int *stride, int *step)
{
    int found = 0;
    *step = 0;
    for (int d = 0; d < KDIMS; d++)
        if (shape[d] != 1) {
            *step = stride[d];
            found++;
        }
    return found <= 1;
}

KILN_KERNEL void kiln_reduce(__global const T *in, __global T *out,
                             const reduce_params P)
{
    __local T part[NTHREADS];
    reduce_params p = P;
    uint lid = kiln_local_index();
    uint split = (uint)max(p.split, 1);
    int step;
    const int single = single_step(p.red_shape, p.red_stride, &step);
    for (uint v = kiln_group_index(); v < (uint)p.nout * split;
         v += kiln_group_count()) {
        uint r0, r1;
        uint o = reduce_slice(v, split, (uint)p.nred, &r0, &r1);
        int base = p.off_in +
                   kiln_offset((int)o, p.outer_shape, p.outer_stride);
        T acc = reduce_identity(p.op);
        if (single) /* at most one reduced dimension: no divisions */
            for (uint r = r0 + lid; r < r1; r += NTHREADS)
                acc = reduce_combine(p.op, acc, in[base + (int)r * step]);
        else
            for (uint r = r0 + lid; r < r1; r += NTHREADS)
                acc = reduce_combine(
                    p.op, acc,
                    in[base + kiln_offset((int)r, p.red_shape, p.red_stride)]);
        T val = reduce_group(p.op, acc, part, lid);
        if (lid == 0)
            out[p.off_out + (int)v] =
                reduce_finish(p.op, val, p.scale_lo, p.scale_hi);
    }
}

/* ---- the fused reduction (KILN_K_FUSED_REDUCE) -------------------------- */

/* lib/queue/kernels_fused.h; the kernel kiln_fused_reduce is generated per
 * program (cl_fused.c) and appended to this file. */
#define FUSED_DIMS 3
#define FUSED_MAX_INPUTS 6

typedef struct {
    int mode, ninputs, off_out; /* mode: op | reduced mask << 4 | split << 8 */
    uint scale_lo, scale_hi;
    int shape[FUSED_DIMS];
    int off_in[FUSED_MAX_INPUTS];
    int stride_in[FUSED_MAX_INPUTS][FUSED_DIMS];
} fused_reduce_params;

/* The number of outputs (kept dimensions) or of reduced elements. */
int fused_reduce_count(const fused_reduce_params *p, int reduced)
{
    int n = 1;
    for (int d = 0; d < FUSED_DIMS; d++)
        if ((((p->mode >> 4) & (4 >> d)) != 0) == reduced)
            n *= p->shape[d];
    return n;
}

/* The one reduced dimension, or -1 when there are more (or none). */
int fused_reduce_single_dim(const fused_reduce_params *p)
{
    int mask = (p->mode >> 4) & 7, rd = -1;
    for (int d = 0; d < FUSED_DIMS; d++)
        if (mask & (4 >> d))
            rd = rd < 0 ? d : FUSED_DIMS;
    return rd < FUSED_DIMS ? rd : -1;
}

/* The 3-D index of output @o's reduced element @r (each row-major over
 * its dimensions). */
void fused_reduce_index(const fused_reduce_params *p, uint o, uint r,
                        int *idx)
{
    for (int d = FUSED_DIMS - 1; d >= 0; d--) {
        uint s = (uint)p->shape[d];
        if ((p->mode >> 4) & (4 >> d)) {
            idx[d] = (int)(r % s);
            r /= s;
        } else {
            idx[d] = (int)(o % s);
            o /= s;
        }
    }
}

/* ---- argmax / argmin ---------------------------------------------------- */

/* Does candidate (vb, ib) replace (va, ia)?  Index -1 = no element yet.
 * NaN beats numbers, and between equals (or two NaNs) the lower index. */
int arg_takes(int op, T va, int ia, T vb, int ib)
{
    if (ib < 0)
        return 0;
    if (ia < 0)
        return 1;
    int na = T_ISNAN(va), nb = T_ISNAN(vb);
    if (na || nb)
        return na && nb ? ib < ia : nb;
    if (op == 0 ? vb > va : vb < va)
        return 1;
    if (op == 0 ? va > vb : va < vb)
        return 0;
    return ib < ia;
}

KILN_KERNEL void kiln_argreduce(__global const T *in, __global int *out,
                                const reduce_params P)
{
    __local T part[NTHREADS];
    __local int part_index[NTHREADS];
    reduce_params p = P;
    uint lid = kiln_local_index();
    uint top = pow2_below_threads();
    for (uint o = kiln_group_index(); o < (uint)p.nout;
         o += kiln_group_count()) {
        int base = p.off_in +
                   kiln_offset((int)o, p.outer_shape, p.outer_stride);
        T best = (T)0;
        int bi = -1;
        for (uint r = lid; r < (uint)p.nred; r += NTHREADS) {
            T v = in[base + kiln_offset((int)r, p.red_shape, p.red_stride)];
            if (arg_takes(p.op, best, bi, v, (int)r)) {
                best = v;
                bi = (int)r;
            }
        }
        part[lid] = best;
        part_index[lid] = bi;
        LOCAL_BARRIER();
        for (uint h = top; h > 0; h /= 2) {
            uint from = lid + h;
            /* The first step (h = top) folds the tail above a power of two;
             * later steps halve. */
            if ((h == top ? from < NTHREADS : lid < h) && from < NTHREADS &&
                arg_takes(p.op, part[lid], part_index[lid], part[from],
                          part_index[from])) {
                part[lid] = part[from];
                part_index[lid] = part_index[from];
            }
            LOCAL_BARRIER();
        }
        if (lid == 0)
            out[p.off_out + (int)o] = part_index[0] < 0 ? 0 : part_index[0];
        LOCAL_BARRIER();
    }
}
