/*
 * schedule.c - learning-rate schedules: plain host arithmetic, evaluated
 * once per step or epoch and passed to kiln_optimizer_step.
 */
#include <math.h>

#include "kiln.h"

#define KILN_PI 3.14159265358979323846

/* A period of zero or less would divide by zero: treat it as 1. */
static double period_of(const kiln_lr_schedule *s)
{
    return s->period > 0 ? s->period : 1;
}

double kiln_lr_at(const kiln_lr_schedule *s, double t)
{
    if (!s)
        return 0;
    switch (s->kind) {
    case KILN_LR_CONSTANT:
        return s->lr;
    case KILN_LR_INVERSE_TIME:
        return s->lr / (1 + s->decay * t);
    case KILN_LR_EXPONENTIAL:
        return s->lr * pow(s->decay, t);
    case KILN_LR_INVERSE_SQRT:
        /* Defined from t = 1; earlier steps keep the first value. */
        return s->lr / sqrt(t < 1 ? 1 : t);
    case KILN_LR_STAIRCASE:
        return s->lr * pow(s->decay, floor(t / period_of(s)));
    case KILN_LR_COSINE: {
        /* Past the period the rate stays at lr_min (no restarts). */
        double p = period_of(s), u = t < 0 ? 0 : t > p ? p : t;
        return s->lr_min + (s->lr - s->lr_min) * (1 + cos(KILN_PI * u / p)) / 2;
    }
    }
    return s->lr;
}
