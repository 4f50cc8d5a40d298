/*
 * norm.cl - local response normalisation (forward, backward) and the
 * embedding row gather / scatter.
 *
 * Semantics of lib/cpu/cpu_norm.c; parameter blocks in
 * lib/queue/kernels_norm.h.
 *   kiln_lrn:          y_c = x_c * s_c^-beta,
 *                      s_c = k + alpha/size * sum_{j in W(c)} x_j^2,
 *                      W(c) = c - size/2 .. c + (size-1)/2 (clipped).
 *   kiln_lrn_backward: dx_c = dy_c s_c^-beta - 2 alpha beta/size * x_c *
 *                      sum_{j: c in W(j)} dy_j y_j / s_j.
 *   kiln_gather_rows:  out[p, d] = table[idx[p], d], 0 for a bad index.
 *   kiln_scatter_rows: out[v, d] = sum over p ascending, idx[p] == v, of
 *                      dy[p, d]: deterministic, no atomics.
 * Layout: contiguous [outer, channels, inner] for LRN, one work-item per
 * element (the backward recomputes every s_j it needs: O(size^2) loads per
 * element, no scratch buffer); one work-item per output element for the
 * row kernels.  Grid-stride over n, any grid.
 * Tunables: the workgroup size only.  LRN and scatter exist for float T;
 * gather for every T (it copies values).
 */

typedef struct {
    int n, channels, inner, size;
    int off_a, off_b, off_c, off_out;
    uint alpha_lo, alpha_hi, beta_lo, beta_hi, k_lo, k_hi;
    uint pad[18];
} lrn_params;

typedef struct {
    int n, rows, cols, positions;
    int off_src, off_idx, off_out, row_stride, col_stride;
    uint pad[23];
} rows_params;

#if T_FLOAT
/* s for channel @c of the element at @plane + @pos. */
T lrn_scale(__global const T *x, const lrn_params *p, int plane, int pos,
            int c, T alpha, T k)
{
    int lo = max(c - p->size / 2, 0);
    int hi = min(c + (p->size - 1) / 2, p->channels - 1);
    T sum = (T)0;
    for (int j = lo; j <= hi; j++) {
        T v = x[plane + j * p->inner + pos];
        sum += v * v;
    }
    return k + alpha / (T)p->size * sum;
}

/* Element @i of [outer, channels, inner]: the offset of its plane (its
 * outer index), its position within the plane's inner dim, its channel. */
void lrn_index(const lrn_params *p, int i, int *plane, int *pos, int *c)
{
    int per = p->channels * p->inner;
    *pos = i % p->inner;
    *c = (i / p->inner) % p->channels;
    *plane = (i / per) * per;
}

KILN_KERNEL void kiln_lrn(__global const T *x, __global T *y,
                          const lrn_params P)
{
    lrn_params p = P;
    T alpha = T_FROM_BITS(p.alpha_lo, p.alpha_hi);
    T beta = T_FROM_BITS(p.beta_lo, p.beta_hi);
    T k = T_FROM_BITS(p.k_lo, p.k_hi);
    for (uint i = kiln_global_index(); i < (uint)p.n;
         i += kiln_global_count()) {
        int plane, pos, c;
        lrn_index(&p, (int)i, &plane, &pos, &c);
        T s = lrn_scale(x, &p, p.off_a + plane, pos, c, alpha, k);
        y[p.off_out + (int)i] = x[p.off_a + (int)i] * pow(s, -beta);
    }
}

KILN_KERNEL void kiln_lrn_backward(__global const T *dy, __global const T *x,
                                   __global const T *y, __global T *dx,
                                   const lrn_params P)
{
    lrn_params p = P;
    T alpha = T_FROM_BITS(p.alpha_lo, p.alpha_hi);
    T beta = T_FROM_BITS(p.beta_lo, p.beta_hi);
    T k = T_FROM_BITS(p.k_lo, p.k_hi);
    for (uint i = kiln_global_index(); i < (uint)p.n;
         i += kiln_global_count()) {
        int plane, pos, c;
        lrn_index(&p, (int)i, &plane, &pos, &c);
        T s = lrn_scale(x, &p, p.off_b + plane, pos, c, alpha, k);
        /* Channels whose window holds c: c - (size-1)/2 .. c + size/2. */
        int lo = max(c - (p.size - 1) / 2, 0);
        int hi = min(c + p.size / 2, p.channels - 1);
        T acc = (T)0;
        for (int j = lo; j <= hi; j++) {
            int at = plane + j * p.inner + pos;
            T sj = lrn_scale(x, &p, p.off_b + plane, pos, j, alpha, k);
            acc += dy[p.off_a + at] * y[p.off_c + at] / sj;
        }
        dx[p.off_out + (int)i] =
            dy[p.off_a + (int)i] * pow(s, -beta) -
            (T)2 * alpha * beta / (T)p.size * x[p.off_b + (int)i] * acc;
    }
}

KILN_KERNEL void kiln_scatter_rows(__global const T *dy,
                                   __global const int *idx,
                                   __global T *out, const rows_params P)
{
    rows_params p = P;
    for (uint i = kiln_global_index(); i < (uint)p.n;
         i += kiln_global_count()) {
        int v = (int)i / p.cols, col = (int)i % p.cols;
        T acc = (T)0;
        for (int pos = 0; pos < p.positions; pos++)
            if (idx[p.off_idx + pos] == v)
                acc += dy[p.off_src + pos * p.cols + col];
        out[p.off_out + (int)i] = acc;
    }
}
#endif /* T_FLOAT */

KILN_KERNEL void kiln_gather_rows(__global const T *table,
                                  __global const int *idx, __global T *out,
                                  const rows_params P)
{
    rows_params p = P;
    for (uint i = kiln_global_index(); i < (uint)p.n;
         i += kiln_global_count()) {
        int pos = (int)i / p.cols, col = (int)i % p.cols;
        int v = idx[p.off_idx + pos];
        T val = (T)0;
        if (v >= 0 && v < p.rows)
            val = table[p.off_src + v * p.row_stride + col * p.col_stride];
        out[p.off_out + (int)i] = val;
    }
}
