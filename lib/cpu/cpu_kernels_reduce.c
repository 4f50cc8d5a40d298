/*
 * cpu_kernels_reduce.c - reference reductions and matrix product.
 *
 * Sums accumulate in long double with Neumaier compensation (int sums in
 * int64, wrapped to int32 like the GPU's wrapping adds): the reference must
 * be more accurate than any device, f64 ones included, so the tests'
 * tolerances measure only the device's error.
 */
#include <math.h>

#include "cpu/cpu_kernels_internal.h"
#include "queue/kernels.h"

void kiln_cpu_reducer_init(kiln_cpu_reducer *r, int op)
{
    *r = (kiln_cpu_reducer){.op = op};
    r->acc = op == KILN_KREDUCE_SUM ? 0
           : op == KILN_KREDUCE_MAX ? -INFINITY : INFINITY;
}

void kiln_cpu_reducer_add(kiln_cpu_reducer *r, kiln_dtype t, double v)
{
    if (isnan(v))
        r->saw_nan = 1;
    if (r->op == KILN_KREDUCE_SUM) {
        long double sum = r->sum, s = sum + v;
        if (isfinite(s)) /* infinities carry no rounding error */
            r->comp += fabsl(sum) >= fabsl((long double)v) ? (sum - s) + v
                                                           : (v - s) + sum;
        r->sum = s;
        if (t == KILN_I32)
            r->iacc += (int64_t)v;
    } else if (r->op == KILN_KREDUCE_MAX) {
        r->acc = v > r->acc ? v : r->acc;
    } else {
        r->acc = v < r->acc ? v : r->acc;
    }
}

double kiln_cpu_reducer_result(const kiln_cpu_reducer *r, kiln_dtype t,
                               double scale)
{
    double acc = r->op == KILN_KREDUCE_SUM ? (double)(r->sum + r->comp)
                                           : r->acc;
    if (r->saw_nan)
        acc = NAN;
    if (t == KILN_I32 && r->op == KILN_KREDUCE_SUM)
        acc = (int32_t)(uint32_t)(uint64_t)r->iacc;
    else if (r->op == KILN_KREDUCE_SUM)
        acc *= scale;
    return acc;
}

void kiln_cpu_reduce_slice(int64_t v, int64_t split, int64_t nred,
                           int64_t *o, int64_t *r0, int64_t *r1)
{
    int64_t chunk = split > 1 ? (nred + split - 1) / split : nred;
    int64_t s = split > 1 ? v % split : 0;
    *o = split > 1 ? v / split : v;
    *r0 = s * chunk;
    *r1 = *r0 + chunk < nred ? *r0 + chunk : nred;
}

void kiln_cpu_reduce(const kiln_dispatch *d, void *const *base)
{
    const kiln_reduce_params *p = (const void *)d->params;
    double scale = kiln_cpu_scalar(d->dtype, p->scale_lo, p->scale_hi);
    int64_t split = p->split > 1 ? p->split : 1;
    for (int64_t v = 0; v < p->nout * split; v++) {
        int64_t o, r0, r1;
        kiln_cpu_reduce_slice(v, split, p->nred, &o, &r0, &r1);
        int64_t outer = p->off_in + kiln_cpu_strided_offset(
                                        o, p->outer_shape, p->outer_stride);
        kiln_cpu_reducer r;
        kiln_cpu_reducer_init(&r, p->op);
        for (int64_t i = r0; i < r1; i++) {
            int64_t at = outer + kiln_cpu_strided_offset(i, p->red_shape,
                                                         p->red_stride);
            kiln_cpu_reducer_add(&r, d->dtype,
                                 kiln_cpu_load(base[0], d->dtype, at));
        }
        kiln_cpu_store(base[1], d->dtype, p->off_out + v,
                       kiln_cpu_reducer_result(&r, d->dtype, scale));
    }
}

void kiln_cpu_argreduce(const kiln_dispatch *d, void *const *base)
{
    const kiln_reduce_params *p = (const void *)d->params;
    for (int64_t o = 0; o < p->nout; o++) {
        int64_t outer = p->off_in + kiln_cpu_strided_offset(
                                        o, p->outer_shape, p->outer_stride);
        int64_t best = 0;
        double bestv = 0;
        for (int64_t r = 0; r < p->nred; r++) {
            int64_t at = outer + kiln_cpu_strided_offset(r, p->red_shape,
                                                         p->red_stride);
            double v = kiln_cpu_load(base[0], d->dtype, at);
            if (r == 0) {
                bestv = v;
                continue;
            }
            if (isnan(bestv))
                break; /* the first NaN wins */
            int better = p->op == KILN_KARG_MAX ? v > bestv : v < bestv;
            if (better || isnan(v)) {
                best = r;
                bestv = v;
            }
        }
        ((int32_t *)base[1])[p->off_out + o] = (int32_t)best;
    }
}

static double round_to(kiln_dtype t, double v)
{
    return t == KILN_F32 ? (double)(float)v : v;
}

void kiln_cpu_gemm(const kiln_dispatch *d, void *const *base)
{
    const kiln_gemm_params *p = (const void *)d->params;
    double alpha = kiln_cpu_scalar(d->dtype, p->alpha_lo, p->alpha_hi);
    double beta = kiln_cpu_scalar(d->dtype, p->beta_lo, p->beta_hi);
    for (int64_t z = 0; z < p->batch; z++) {
        int64_t a0 = p->off_a + z * p->a_sb, b0 = p->off_b + z * p->b_sb;
        int64_t c0 = p->off_c + z * p->c_sb;
        for (int64_t m = 0; m < p->m; m++) {
            for (int64_t n = 0; n < p->n; n++) {
                double acc = 0;
                for (int64_t k = 0; k < p->k; k++)
                    acc += kiln_cpu_load(base[0], d->dtype,
                                         a0 + m * p->a_sm + k * p->a_sk) *
                           kiln_cpu_load(base[1], d->dtype,
                                         b0 + k * p->b_sk + n * p->b_sn);
                int64_t at = c0 + m * p->c_sm + n;
                double c = alpha * acc;
                if (beta != 0)
                    c += beta * kiln_cpu_load(base[2], d->dtype, at);
                /* The epilogue rounds to T between steps, as the separate
                 * add and activation kernels would. */
                if (p->epilogue & KILN_GEMM_BIAS)
                    c = round_to(d->dtype, c) +
                        kiln_cpu_load(base[3], d->dtype,
                                      p->off_bias + m * p->bias_sm +
                                          n * p->bias_sn);
                if (p->epilogue >> KILN_GEMM_ACT_SHIFT)
                    c = kiln_cpu_unary_float(
                        (p->epilogue >> KILN_GEMM_ACT_SHIFT) - 1,
                        round_to(d->dtype, c));
                kiln_cpu_store(base[2], d->dtype, at, c);
            }
        }
    }
}
