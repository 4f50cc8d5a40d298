/*
 * cpu_random.c - reference semantics of KILN_K_RANDOM (Philox4x32-10;
 * the generator and the distributions are defined in
 * queue/kernels_random.h).
 *
 * Uniform and Bernoulli values are computed exactly as the devices do
 * (f32 arithmetic for f32: this file is built with -std=c11, where GCC
 * does not contract a*b+c into a fused multiply-add), so those agree bit
 * for bit.  Normal values are computed in double and rounded once.
 */
#include <math.h>
#include <string.h>

#include "cpu/cpu_kernels_internal.h"
#include "queue/kernels_random.h"

#define TWO_PI 6.283185307179586476925286766559

/* u in [0, 1) (plus_one = 0) or (0, 1] (plus_one = 1) from the words at
 * @w: 24 bits for f32, 53 for f64. */
static double uniform01(kiln_dtype t, const uint32_t *w, int plus_one)
{
    if (t == KILN_F32)
        return ((double)(w[0] >> 8) + plus_one) * 0x1.0p-24;
    double k = (double)w[0] * 2097152.0 + (double)(w[1] >> 11);
    return (k + plus_one) * 0x1.0p-53;
}

static double box_muller(kiln_dtype t, const uint32_t *w1, const uint32_t *w2)
{
    double u1 = uniform01(t, w1, 1), u2 = uniform01(t, w2, 0);
    return sqrt(-2.0 * log(u1)) * cos(TWO_PI * u2);
}

/* Truncated to 2 std: the first candidate within [-2, 2], in the order of
 * kernels_random.h. */
static double truncated(kiln_dtype t, uint64_t seed, uint64_t offset,
                        int64_t i)
{
    uint32_t w[4];
    double z = 0;
    for (uint32_t k = 0; k < KILN_RANDOM_TRUNC_ATTEMPTS; k++) {
        kiln_philox_element(seed, offset, (uint64_t)i, k, w);
        if (t == KILN_F32) {
            z = box_muller(t, &w[0], &w[1]);
            if (fabs(z) <= 2)
                return z;
            z = box_muller(t, &w[2], &w[3]);
        } else {
            z = box_muller(t, &w[0], &w[2]);
        }
        if (fabs(z) <= 2)
            return z;
    }
    return z > 2 ? 2 : z < -2 ? -2 : z;
}

static void store_uniform(void *out, kiln_dtype t, int64_t at,
                          const uint32_t *w, double lo, double hi)
{
    if (t == KILN_F32) {
        float flo = (float)lo, fhi = (float)hi;
        float u = (float)uniform01(t, w, 0);
        float v = flo + (fhi - flo) * u;
        ((float *)out)[at] = v < fhi ? v : flo;
    } else {
        double v = lo + (hi - lo) * uniform01(t, w, 0);
        ((double *)out)[at] = v < hi ? v : lo;
    }
}

void kiln_cpu_random(const kiln_dispatch *d, void *const *base)
{
    const kiln_random_params *p = (const void *)d->params;
    uint64_t seed = (uint64_t)p->seed_hi << 32 | p->seed_lo;
    uint64_t offset = (uint64_t)p->offset_hi << 32 | p->offset_lo;
    if (p->dist & KILN_RANDOM_DEVICE_OFFSET) {
        const uint32_t *w = (const uint32_t *)base[1] + p->off_dev;
        offset += (uint64_t)w[1] << 32 | w[0];
    }
    int dist = p->dist & KILN_RANDOM_DIST_MASK;
    uint64_t thr = (uint64_t)p->thr_hi << 32 | p->thr_lo;
    size_t es = kiln_dtype_size(d->dtype);
    for (int64_t i = 0; i < p->n; i++) {
        int64_t at = p->off_out +
                     kiln_cpu_strided_offset(i, p->shape, p->stride_out);
        uint32_t w[4];
        kiln_philox_element(seed, offset, (uint64_t)i, 0, w);
        if (dist == KILN_RANDOM_BERNOULLI) {
            /* The bits of a or b as given: exact for every dtype. */
            uint32_t v[2] = {p->b_lo, p->b_hi};
            if (w[0] < thr) {
                v[0] = p->a_lo;
                v[1] = p->a_hi;
            }
            memcpy((char *)base[0] + at * (int64_t)es, v, es);
            continue;
        }
        double a = kiln_cpu_scalar(d->dtype, p->a_lo, p->a_hi);
        double b = kiln_cpu_scalar(d->dtype, p->b_lo, p->b_hi);
        if (dist == KILN_RANDOM_UNIFORM) {
            store_uniform(base[0], d->dtype, at, w, a, b);
            continue;
        }
        double z = dist == KILN_RANDOM_NORMAL
                       ? (d->dtype == KILN_F32 ? box_muller(d->dtype, &w[0], &w[1])
                                               : box_muller(d->dtype, &w[0], &w[2]))
                       : truncated(d->dtype, seed, offset, i);
        kiln_cpu_store(base[0], d->dtype, at, a + b * z);
    }
}
