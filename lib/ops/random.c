/*
 * random.c - counter-based random numbers (Philox4x32-10), dropout,
 * permutations and categorical sampling.
 *
 * Every draw is a pure function of (seed, offset + element index), defined
 * in queue/kernels_random.h, so results do not depend on the backend, the
 * device, the grid or the order in which work-items run.  Uniform and
 * Bernoulli draws are bit-identical everywhere; normal ones agree to a few
 * ulp (each device's own log/cos).
 *
 * Dropout is one RANDOM dispatch (a Bernoulli mask whose "hit" value is
 * the scale 1/(1 - rate)) and one multiply.  A permutation is shuffled on
 * the host (Fisher-Yates driven by the same Philox stream, then uploaded):
 * a device sort would be far more code for an op used once per epoch, and
 * the host makes it trivially identical on every backend.  Categorical
 * sampling (in softmax.c) draws one uniform per row with RANDOM and inverts
 * the CDF of softmax(logits / temperature) in the softmax cross-entropy
 * kernel's SAMPLE mode (kernels_softmax.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "queue/kernels_random.h"

/* Fills @t (any view) with distribution @dist; a and b in T's bits. */
static kiln_status launch_random(kiln_context *ctx, const char *call,
                                 kiln_tensor *t, int dist, uint64_t seed,
                                 uint64_t offset, double a, double b,
                                 uint64_t threshold)
{
    int64_t n = kiln_tensor_numel(t);
    if (n == 0)
        return KILN_OK;
    kiln_dispatch d;
    kiln__dispatch_init(ctx, &d, KILN_K_RANDOM, t->dtype, n);
    kiln_random_params *p = (kiln_random_params *)d.params;
    p->n = (int32_t)n;
    p->dist = dist;
    p->off_out = (int32_t)kiln__block_offset(t);
    p->seed_lo = (uint32_t)seed;
    p->seed_hi = (uint32_t)(seed >> 32);
    p->offset_lo = (uint32_t)offset;
    p->offset_hi = (uint32_t)(offset >> 32);
    kiln__scalar_bits(t->dtype, a, &p->a_lo, &p->a_hi);
    kiln__scalar_bits(t->dtype, b, &p->b_lo, &p->b_hi);
    p->thr_lo = (uint32_t)threshold;
    p->thr_hi = (uint32_t)(threshold >> 32);
    kiln__kernel_strides(t, t->ndim, t->shape, p->shape, p->stride_out);
    kiln__bind(&d, t, KILN_ACCESS_WRITE);
    return kiln__launch(ctx, call, &d, dist);
}

/* The context of @t for a fill-in-place random op, with the checks they
 * share; NULL after recording why. */
static kiln_context *random_target(const char *call, kiln_tensor *t,
                                   int int_ok, kiln_status *status)
{
    kiln_context *ctx = kiln__args(call, 1, &t);
    *status = KILN_ERROR_INVALID_ARGUMENT;
    if (!ctx) {
        if (t && t->ctx)
            *status = kiln_status_of(t->ctx);
        return NULL;
    }
    if (t->dtype == KILN_I32 && !int_ok) {
        *status = kiln__error(ctx, KILN_ERROR_DTYPE,
                              "%s: needs f32 or f64, got i32", call);
        return NULL;
    }
    return ctx;
}

kiln_status kiln_random_uniform(kiln_tensor *t, uint64_t seed,
                                uint64_t offset, double lo, double hi)
{
    const char *call = "kiln_random_uniform";
    kiln_status s;
    kiln_context *ctx = random_target(call, t, 0, &s);
    if (!ctx)
        return s;
    if (!(lo < hi) || !isfinite(lo) || !isfinite(hi))
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: needs finite lo < hi, got [%g, %g)", call, lo,
                           hi);
    return launch_random(ctx, call, t, KILN_RANDOM_UNIFORM, seed, offset, lo,
                         hi, 0);
}

static kiln_status normal(kiln_tensor *t, uint64_t seed, uint64_t offset,
                          double mean, double std, int dist, const char *call)
{
    kiln_status s;
    kiln_context *ctx = random_target(call, t, 0, &s);
    if (!ctx)
        return s;
    if (!(std >= 0) || !isfinite(std) || !isfinite(mean))
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: needs a finite mean and std >= 0, got mean "
                           "%g std %g", call, mean, std);
    return launch_random(ctx, call, t, dist, seed, offset, mean, std, 0);
}

kiln_status kiln_random_normal(kiln_tensor *t, uint64_t seed, uint64_t offset,
                               double mean, double std)
{
    return normal(t, seed, offset, mean, std, KILN_RANDOM_NORMAL,
                  "kiln_random_normal");
}

kiln_status kiln_random_truncated_normal(kiln_tensor *t, uint64_t seed,
                                         uint64_t offset, double mean,
                                         double std)
{
    return normal(t, seed, offset, mean, std, KILN_RANDOM_TRUNCATED_NORMAL,
                  "kiln_random_truncated_normal");
}

/* ceil(p * 2^32): a 32-bit word w is below it with probability p. */
static uint64_t bernoulli_threshold(double p)
{
    return (uint64_t)ceil(p * 4294967296.0);
}

kiln_status kiln_random_bernoulli(kiln_tensor *t, uint64_t seed,
                                  uint64_t offset, double p)
{
    const char *call = "kiln_random_bernoulli";
    kiln_status s;
    kiln_context *ctx = random_target(call, t, 1, &s);
    if (!ctx)
        return s;
    if (!(p >= 0 && p <= 1))
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: p must be in [0, 1], got %g", call, p);
    return launch_random(ctx, call, t, KILN_RANDOM_BERNOULLI, seed, offset,
                         1.0, 0.0, bernoulli_threshold(p));
}

kiln_tensor *kiln_dropout(kiln_tensor *x, double rate, int training,
                          uint64_t seed, uint64_t offset, kiln_tensor **mask)
{
    const char *call = "kiln_dropout";
    if (mask)
        *mask = NULL;
    kiln_context *ctx = kiln__args(call, 1, &x);
    if (!ctx)
        return NULL;
    if (x->dtype == KILN_I32)
        return kiln__error_null(ctx, KILN_ERROR_DTYPE,
                                "%s: needs f32 or f64, got i32", call);
    if (!(rate >= 0 && rate <= 1))
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: rate must be in [0, 1], got %g", call,
                                rate);
    kiln_tensor *m = kiln__tensor_alloc(ctx, call, x->dtype, x->ndim,
                                        x->shape);
    if (!m)
        return NULL;
    kiln_status s;
    if (training) /* rate 1 drops everything: the kept value is moot */
        s = launch_random(ctx, call, m, KILN_RANDOM_BERNOULLI, seed, offset,
                          rate < 1 ? 1.0 / (1.0 - rate) : 0.0, 0.0,
                          bernoulli_threshold(1.0 - rate));
    else
        s = kiln_fill(m, 1.0);
    kiln_tensor *y = NULL;
    if (s == KILN_OK)
        y = training ? kiln_mul(x, m) : kiln_contiguous_copy(x);
    if (y && mask)
        *mask = m;
    else
        kiln_tensor_free(m);
    return y;
}

kiln_tensor *kiln_random_permutation(kiln_context *ctx, int64_t n,
                                     uint64_t seed)
{
    const char *call = "kiln_random_permutation";
    if (!ctx)
        return NULL;
    if (n < 0 || n > KILN_MAX_ELEMENTS)
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: n = %lld is out of range", call,
                                (long long)n);
    int32_t *perm = malloc((size_t)(n ? n : 1) * sizeof *perm);
    if (!perm)
        return kiln__error_null(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                "%s: out of host memory for %lld indices",
                                call, (long long)n);
    for (int64_t i = 0; i < n; i++)
        perm[i] = (int32_t)i;
    /* Fisher-Yates from the back: position i swaps with j uniform in
     * [0, i], j from 64 bits of the block at counter i (modulo bias below
     * 2^-32 for any n Kiln allows). */
    for (int64_t i = n - 1; i > 0; i--) {
        uint32_t w[4];
        kiln_philox_element(seed, 0, (uint64_t)i, 0, w);
        uint64_t r = (uint64_t)w[1] << 32 | w[0];
        int64_t j = (int64_t)(r % (uint64_t)(i + 1));
        int32_t tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    kiln_tensor *t = kiln__tensor_alloc(ctx, call, KILN_I32, 1, &n);
    if (t && n && kiln_tensor_write(t, perm, (size_t)n * sizeof *perm) !=
                      KILN_OK) {
        kiln_tensor_free(t);
        t = NULL;
    }
    free(perm);
    return t;
}

/* kiln_sample_categorical is in softmax.c, beside the kernel mode it uses. */
