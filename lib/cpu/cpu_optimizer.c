/*
 * cpu_optimizer.c - reference semantics of KILN_K_OPTIMIZER, the fused
 * update of every optimizer (formulas in queue/kernels_optimizer.h).
 *
 * Computed in double from the scalars as the device sees them (rounded to
 * T), then stored once in T; devices computing in f32 differ by rounding.
 */
#include <math.h>

#include "cpu/cpu_kernels_internal.h"
#include "queue/kernels_optimizer.h"

/* The scalars of one dispatch, as doubles. */
typedef struct opt_scalars {
    double lr, mu, damp, b1, b2, rho, eps, wd, bc1, bc2, omb1, omb2, omrho;
} opt_scalars;

static opt_scalars scalars(const kiln_dispatch *d)
{
    const kiln_optimizer_params *p = (const void *)d->params;
    kiln_dtype t = d->dtype;
    opt_scalars s = {
        kiln_cpu_scalar(t, p->lr_lo, p->lr_hi),
        kiln_cpu_scalar(t, p->momentum_lo, p->momentum_hi),
        kiln_cpu_scalar(t, p->damp_lo, p->damp_hi),
        kiln_cpu_scalar(t, p->beta1_lo, p->beta1_hi),
        kiln_cpu_scalar(t, p->beta2_lo, p->beta2_hi),
        kiln_cpu_scalar(t, p->rho_lo, p->rho_hi),
        kiln_cpu_scalar(t, p->eps_lo, p->eps_hi),
        kiln_cpu_scalar(t, p->wd_lo, p->wd_hi),
        kiln_cpu_scalar(t, p->bc1_lo, p->bc1_hi),
        kiln_cpu_scalar(t, p->bc2_lo, p->bc2_hi),
        kiln_cpu_scalar(t, p->omb1_lo, p->omb1_hi),
        kiln_cpu_scalar(t, p->omb2_lo, p->omb2_hi),
        kiln_cpu_scalar(t, p->omrho_lo, p->omrho_hi),
    };
    return s;
}

/* One element: updates *p, *s1, *s2 from g. */
static void update(int kind, const opt_scalars *c, double *p, double g,
                   double *s1, double *s2)
{
    if (kind == KILN_OPT_ADAMW)
        *p -= c->lr * c->wd * *p;
    else
        g += c->wd * *p;
    switch (kind) {
    case KILN_OPT_SGD:
        *p -= c->lr * g;
        break;
    case KILN_OPT_MOMENTUM:
        *s1 = c->mu * *s1 + c->damp * g;
        *p -= c->lr * *s1;
        break;
    case KILN_OPT_NESTEROV:
        *s1 = c->mu * *s1 + c->damp * g;
        *p -= c->lr * (g + c->mu * *s1);
        break;
    case KILN_OPT_ADAGRAD:
        *s1 += g * g;
        *p -= c->lr * g / (sqrt(*s1) + c->eps);
        break;
    case KILN_OPT_RMSPROP:
        *s1 = c->rho * *s1 + c->omrho * g * g;
        *p -= c->lr * g / (sqrt(*s1) + c->eps);
        break;
    case KILN_OPT_ADAM:
    case KILN_OPT_ADAMW:
        *s1 = c->b1 * *s1 + c->omb1 * g;
        *s2 = c->b2 * *s2 + c->omb2 * g * g;
        *p -= c->lr * (*s1 / c->bc1) / (sqrt(*s2 / c->bc2) + c->eps);
        break;
    case KILN_OPT_ADADELTA: {
        *s1 = c->rho * *s1 + c->omrho * g * g;
        double u = sqrt(*s2 + c->eps) / sqrt(*s1 + c->eps) * g;
        *s2 = c->rho * *s2 + c->omrho * u * u;
        *p -= c->lr * u;
        break;
    }
    default:
        break;
    }
}

void kiln_cpu_optimizer(const kiln_dispatch *d, void *const *base)
{
    const kiln_optimizer_params *p = (const void *)d->params;
    opt_scalars c = scalars(d);
    kiln_dtype t = d->dtype;
    int kind = p->kind & KILN_OPT_KIND_MASK;
    if (p->kind & KILN_OPT_DEVICE_SCALARS) {
        c.lr = kiln_cpu_load(base[4], t, p->lr_lo);
        c.bc1 = kiln_cpu_load(base[4], t, p->lr_lo + 1);
        c.bc2 = kiln_cpu_load(base[4], t, p->lr_lo + 2);
    }
    for (int64_t i = 0; i < p->n; i++) {
        double w = kiln_cpu_load(base[0], t, p->off_p + i);
        double g = kiln_cpu_load(base[1], t, p->off_g + i);
        double s1 = 0, s2 = 0;
        int has1 = kind != KILN_OPT_SGD;
        int has2 = kind == KILN_OPT_ADAM || kind == KILN_OPT_ADAMW ||
                   kind == KILN_OPT_ADADELTA;
        if (has1)
            s1 = kiln_cpu_load(base[2], t, p->off_s1 + i);
        if (has2)
            s2 = kiln_cpu_load(base[3], t, p->off_s2 + i);
        update(kind, &c, &w, g, &s1, &s2);
        kiln_cpu_store(base[0], t, p->off_p + i, w);
        if (has1)
            kiln_cpu_store(base[2], t, p->off_s1 + i, s1);
        if (has2)
            kiln_cpu_store(base[3], t, p->off_s2 + i, s2);
    }
}
