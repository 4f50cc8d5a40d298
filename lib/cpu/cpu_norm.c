/*
 * cpu_norm.c - reference semantics of local response normalisation and of
 * the embedding row gather / scatter (parameter blocks in
 * queue/kernels_norm.h).  Computed in double, rounded once, so the
 * reference is at least as accurate as any device.
 */
#include <math.h>

#include "cpu/cpu_kernels_internal.h"
#include "queue/kernels_norm.h"

/* s_c = k + alpha/size * sum of x^2 over the window of channel c, for the
 * element at @plane (first element of channel 0 of its outer index) +
 * @pos (offset within one channel plane). */
static double lrn_scale(const kiln_lrn_params *p, const void *x,
                        kiln_dtype t, int64_t plane, int64_t pos, int c)
{
    double alpha = kiln_cpu_scalar(t, p->alpha_lo, p->alpha_hi);
    double k = kiln_cpu_scalar(t, p->k_lo, p->k_hi);
    int lo = c - p->size / 2, hi = c + (p->size - 1) / 2;
    double sum = 0;
    for (int j = lo < 0 ? 0 : lo; j <= hi && j < p->channels; j++) {
        double v = kiln_cpu_load(x, t, p->off_a + plane +
                                           (int64_t)j * p->inner + pos);
        sum += v * v;
    }
    return k + alpha / p->size * sum;
}

/* Splits element @i into (plane start, position in plane, channel). */
static void lrn_split(const kiln_lrn_params *p, int64_t i, int64_t *plane,
                      int64_t *pos, int *c)
{
    int64_t per = (int64_t)p->channels * p->inner;
    *pos = i % p->inner;
    *c = (int)((i / p->inner) % p->channels);
    *plane = (i / per) * per;
}

void kiln_cpu_lrn(const kiln_dispatch *d, void *const *base)
{
    const kiln_lrn_params *p = (const void *)d->params;
    double beta = kiln_cpu_scalar(d->dtype, p->beta_lo, p->beta_hi);
    for (int64_t i = 0; i < p->n; i++) {
        int64_t plane, pos;
        int c;
        lrn_split(p, i, &plane, &pos, &c);
        double s = lrn_scale(p, base[0], d->dtype, plane, pos, c);
        double x = kiln_cpu_load(base[0], d->dtype, p->off_a + i);
        kiln_cpu_store(base[1], d->dtype, p->off_out + i, x * pow(s, -beta));
    }
}

void kiln_cpu_lrn_backward(const kiln_dispatch *d, void *const *base)
{
    kiln_lrn_params p = *(const kiln_lrn_params *)(const void *)d->params;
    kiln_dtype t = d->dtype;
    double alpha = kiln_cpu_scalar(t, p.alpha_lo, p.alpha_hi);
    double beta = kiln_cpu_scalar(t, p.beta_lo, p.beta_hi);
    /* lrn_scale reads x at off_a: point it at x (binding 1). */
    kiln_lrn_params px = p;
    px.off_a = p.off_b;
    for (int64_t i = 0; i < p.n; i++) {
        int64_t plane, pos;
        int c;
        lrn_split(&p, i, &plane, &pos, &c);
        double s = lrn_scale(&px, base[1], t, plane, pos, c);
        double dy = kiln_cpu_load(base[0], t, p.off_a + i);
        double x = kiln_cpu_load(base[1], t, p.off_b + i);
        /* Channels j whose window holds c: c - (size-1)/2 .. c + size/2. */
        int lo = c - (p.size - 1) / 2, hi = c + p.size / 2;
        double acc = 0;
        for (int j = lo < 0 ? 0 : lo; j <= hi && j < p.channels; j++) {
            int64_t at = plane + (int64_t)j * p.inner + pos;
            double sj = lrn_scale(&px, base[1], t, plane, pos, j);
            acc += kiln_cpu_load(base[0], t, p.off_a + at) *
                   kiln_cpu_load(base[2], t, p.off_c + at) / sj;
        }
        double dx = dy * pow(s, -beta) - 2 * alpha * beta / p.size * x * acc;
        kiln_cpu_store(base[3], t, p.off_out + i, dx);
    }
}

void kiln_cpu_gather_rows(const kiln_dispatch *d, void *const *base)
{
    const kiln_rows_params *p = (const void *)d->params;
    const int32_t *idx = base[1];
    for (int64_t i = 0; i < p->n; i++) {
        int64_t pos = i / p->cols, col = i % p->cols;
        int32_t v = idx[p->off_idx + pos];
        double val = 0;
        if (v >= 0 && v < p->rows)
            val = kiln_cpu_load(base[0], d->dtype,
                                p->off_src + (int64_t)v * p->row_stride +
                                    col * p->col_stride);
        kiln_cpu_store(base[2], d->dtype, p->off_out + i, val);
    }
}

void kiln_cpu_scatter_rows(const kiln_dispatch *d, void *const *base)
{
    const kiln_rows_params *p = (const void *)d->params;
    const int32_t *idx = base[1];
    for (int64_t i = 0; i < p->n; i++) {
        int64_t v = i / p->cols, col = i % p->cols;
        double acc = 0;
        for (int64_t pos = 0; pos < p->positions; pos++)
            if (idx[p->off_idx + pos] == v)
                acc += kiln_cpu_load(base[0], d->dtype,
                                     p->off_src + pos * p->cols + col);
        kiln_cpu_store(base[2], d->dtype, p->off_out + i, acc);
    }
}
