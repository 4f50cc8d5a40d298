/*
 * init.c - weight initialisers, composed from kiln_fill and the Philox
 * random ops (so the same seed gives the same weights on every backend:
 * uniform-based kinds bit for bit, normal ones within a few ulp).
 *
 * Fans follow PyTorch: a weight [out, in, k...] has fan_in = in * prod(k)
 * and fan_out = out * prod(k); a 1-D tensor has fan_in = fan_out = its
 * length, a scalar 1.
 */
#include <math.h>

#include "ops/ops.h"

static void fans(const kiln_tensor *t, double *fan_in, double *fan_out)
{
    if (t->ndim == 0) {
        *fan_in = *fan_out = 1;
        return;
    }
    if (t->ndim == 1) {
        *fan_in = *fan_out = (double)t->shape[0];
        return;
    }
    double receptive = 1;
    for (int d = 2; d < t->ndim; d++)
        receptive *= (double)t->shape[d];
    *fan_in = (double)t->shape[1] * receptive;
    *fan_out = (double)t->shape[0] * receptive;
}

kiln_status kiln_init(kiln_tensor *t, kiln_init_kind kind, double a,
                      double b, uint64_t seed, uint64_t offset)
{
    const char *call = "kiln_init";
    kiln_context *ctx = kiln__args(call, 1, &t);
    if (!ctx)
        return t && t->ctx ? kiln_status_of(t->ctx)
                           : KILN_ERROR_INVALID_ARGUMENT;
    if (kind == KILN_INIT_ZEROS)
        return kiln_fill(t, 0.0);
    if (kind == KILN_INIT_CONSTANT)
        return kiln_fill(t, a);
    if ((unsigned)kind > KILN_INIT_HE_NORMAL)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: unknown initialiser kind %d", call, (int)kind);
    if (!kiln__is_float(t->dtype))
        return kiln__error(ctx, KILN_ERROR_DTYPE,
                           "%s: random initialisers need f32 or f64, got %s",
                           call, kiln_dtype_name(t->dtype));
    if (kiln_tensor_numel(t) == 0)
        return KILN_OK;
    double fi, fo, gain = a != 0 ? a : 1;
    fans(t, &fi, &fo);
    switch (kind) {
    case KILN_INIT_UNIFORM:
        return kiln_random_uniform(t, seed, offset, a, b);
    case KILN_INIT_NORMAL:
        return kiln_random_normal(t, seed, offset, a, b);
    case KILN_INIT_TRUNCATED_NORMAL:
        return kiln_random_truncated_normal(t, seed, offset, a, b);
    case KILN_INIT_XAVIER_UNIFORM: {
        double bound = gain * sqrt(6.0 / (fi + fo));
        return kiln_random_uniform(t, seed, offset, -bound, bound);
    }
    case KILN_INIT_XAVIER_NORMAL:
        return kiln_random_normal(t, seed, offset, 0,
                                  gain * sqrt(2.0 / (fi + fo)));
    case KILN_INIT_HE_UNIFORM: {
        double bound = sqrt(6.0 / fi);
        return kiln_random_uniform(t, seed, offset, -bound, bound);
    }
    case KILN_INIT_HE_NORMAL:
        return kiln_random_normal(t, seed, offset, 0, sqrt(2.0 / fi));
    default:
        return KILN_ERROR_INVALID_ARGUMENT; /* handled above */
    }
}
