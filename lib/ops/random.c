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

/* Fills @t (any view) with distribution @dist; a and b in T's bits.  With
 * @dev (checked by dev_offset_ok) the stream's offset is @offset plus the
 * 64-bit value in @dev, read when the kernel runs. */
static kiln_status launch_random(kiln_context *ctx, const char *call,
                                 kiln_tensor *t, int dist, uint64_t seed,
                                 uint64_t offset, const kiln_tensor *dev,
                                 double a, double b, uint64_t threshold)
{
    int64_t n = kiln_tensor_numel(t);
    if (n == 0)
        return KILN_OK;
    kiln_dispatch d;
    kiln__dispatch_init(ctx, &d, KILN_K_RANDOM, t->dtype, n);
    kiln_random_params *p = (kiln_random_params *)d.params;
    p->n = (int32_t)n;
    p->dist = dist | (dev ? KILN_RANDOM_DEVICE_OFFSET : 0);
    p->off_out = (int32_t)kiln__block_offset(t);
    p->off_dev = dev ? (int32_t)kiln__block_offset(dev) : 0;
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
    /* Binding 1 always: OpenCL and Vulkan need every declared slot. */
    kiln__bind(&d, dev ? dev : t, KILN_ACCESS_READ);
    return kiln__launch(ctx, call, &d, dist);
}

/* Is @dev, when given, a contiguous i32 tensor of 2 elements ({lo, hi})
 * on @ctx?  Else records why. */
static int dev_offset_ok(kiln_context *ctx, const char *call,
                         const kiln_tensor *dev)
{
    if (!dev)
        return 1;
    if (kiln__tensor_ctx(dev) != ctx || dev->dtype != KILN_I32 ||
        kiln_tensor_numel(dev) != 2 || !kiln_tensor_is_contiguous(dev)) {
        kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                    "%s: the device offset must be a live contiguous i32 "
                    "tensor of 2 elements {lo, hi} on the same context",
                    call);
        return 0;
    }
    return 1;
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

/* ceil(p * 2^32): a 32-bit word w is below it with probability p. */
static uint64_t bernoulli_threshold(double p)
{
    return (uint64_t)ceil(p * 4294967296.0);
}

/* Every fill: checks the arguments of distribution @dist (a, b: uniform
 * lo, hi; normal mean, std; bernoulli p) and launches it. */
static kiln_status random_fill(const char *call, kiln_tensor *t, int dist,
                               uint64_t seed, uint64_t offset,
                               const kiln_tensor *dev, double a, double b)
{
    kiln_status s;
    kiln_context *ctx = random_target(call, t, dist == KILN_RANDOM_BERNOULLI,
                                      &s);
    if (!ctx)
        return s;
    if (!dev_offset_ok(ctx, call, dev))
        return kiln_status_of(ctx);
    switch (dist) {
    case KILN_RANDOM_UNIFORM:
        if (!(a < b) || !isfinite(a) || !isfinite(b))
            return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                               "%s: needs finite lo < hi, got [%g, %g)",
                               call, a, b);
        return launch_random(ctx, call, t, dist, seed, offset, dev, a, b, 0);
    case KILN_RANDOM_NORMAL:
    case KILN_RANDOM_TRUNCATED_NORMAL:
        if (!(b >= 0) || !isfinite(b) || !isfinite(a))
            return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                               "%s: needs a finite mean and std >= 0, got "
                               "mean %g std %g", call, a, b);
        return launch_random(ctx, call, t, dist, seed, offset, dev, a, b, 0);
    case KILN_RANDOM_BERNOULLI:
        if (!(a >= 0 && a <= 1))
            return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                               "%s: p must be in [0, 1], got %g", call, a);
        return launch_random(ctx, call, t, dist, seed, offset, dev, 1.0, 0.0,
                             bernoulli_threshold(a));
    default:
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: no distribution %d", call, dist);
    }
}

kiln_status kiln_random_uniform(kiln_tensor *t, uint64_t seed,
                                uint64_t offset, double lo, double hi)
{
    return random_fill("kiln_random_uniform", t, KILN_RANDOM_UNIFORM, seed,
                       offset, NULL, lo, hi);
}

kiln_status kiln_random_normal(kiln_tensor *t, uint64_t seed, uint64_t offset,
                               double mean, double std)
{
    return random_fill("kiln_random_normal", t, KILN_RANDOM_NORMAL, seed,
                       offset, NULL, mean, std);
}

kiln_status kiln_random_truncated_normal(kiln_tensor *t, uint64_t seed,
                                         uint64_t offset, double mean,
                                         double std)
{
    return random_fill("kiln_random_truncated_normal", t,
                       KILN_RANDOM_TRUNCATED_NORMAL, seed, offset, NULL, mean,
                       std);
}

kiln_status kiln_random_bernoulli(kiln_tensor *t, uint64_t seed,
                                  uint64_t offset, double p)
{
    return random_fill("kiln_random_bernoulli", t, KILN_RANDOM_BERNOULLI,
                       seed, offset, NULL, p, 0);
}

kiln_status kiln__random_fill(kiln_tensor *t, int dist, uint64_t seed,
                              uint64_t offset, const kiln_tensor *dev_offset,
                              double a, double b)
{
    return random_fill("kiln__random_fill", t, dist, seed, offset,
                       dev_offset, a, b);
}

static kiln_tensor *dropout(const char *call, kiln_tensor *x, double rate,
                            int training, uint64_t seed, uint64_t offset,
                            const kiln_tensor *dev, kiln_tensor **mask)
{
    if (mask)
        *mask = NULL;
    kiln_context *ctx = kiln__args(call, 1, &x);
    if (!ctx || !dev_offset_ok(ctx, call, dev))
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
                          dev, rate < 1 ? 1.0 / (1.0 - rate) : 0.0, 0.0,
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

kiln_tensor *kiln_dropout(kiln_tensor *x, double rate, int training,
                          uint64_t seed, uint64_t offset, kiln_tensor **mask)
{
    return dropout("kiln_dropout", x, rate, training, seed, offset, NULL,
                   mask);
}

kiln_tensor *kiln__dropout_dev(kiln_tensor *x, double rate, uint64_t seed,
                               uint64_t offset, const kiln_tensor *dev_offset,
                               kiln_tensor **mask)
{
    return dropout("kiln_dropout", x, rate, 1, seed, offset, dev_offset,
                   mask);
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
