/*
 * optimizer.c - optimizers as one fused kernel per parameter update
 * (KILN_K_OPTIMIZER, formulas in queue/kernels_optimizer.h), and global
 * gradient-norm clipping composed from existing ops.
 *
 * State: each parameter's moment tensors (zeros, same shape and dtype) are
 * made on the parameter's first step and kept in a small table keyed by
 * the kiln_tensor handle; a handle whose shape or dtype changed since (a
 * freed tensor whose address was reused) gets fresh zeros.  Adam's bias
 * corrections 1 - beta^t are computed here, in double, once per step, so
 * the kernels need no pow.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "queue/kernels_optimizer.h"

typedef struct opt_entry {
    const kiln_tensor *param;     /* the key; never dereferenced later    */
    kiln_dtype dtype;
    int ndim;
    int64_t shape[KILN_MAX_DIMS];
    kiln_tensor *state[2];
} opt_entry;

struct kiln_optimizer {
    kiln_context *ctx;
    kiln_optimizer_config cfg;    /* defaults filled in                   */
    int64_t steps;
    /* kiln_optimizer_begin_step: [lr, bc1, bc2] per float dtype on the
     * device, read by kiln_optimizer_step_prepared. */
    kiln_tensor *scalars[2];      /* f32, f64                              */
    opt_entry *entries;
    int count, capacity;
};

/* State tensors per kind (kernels_optimizer.h). */
static int state_count(kiln_optimizer_kind kind)
{
    switch (kind) {
    case KILN_OPT_SGD: return 0;
    case KILN_OPT_ADAM:
    case KILN_OPT_ADAMW:
    case KILN_OPT_ADADELTA: return 2;
    default: return 1;
    }
}

static double or_default(double v, double def)
{
    return v != 0 ? v : def;
}

static kiln_optimizer_config with_defaults(const kiln_optimizer_config *c)
{
    kiln_optimizer_config o = *c;
    int adam = c->kind == KILN_OPT_ADAM || c->kind == KILN_OPT_ADAMW;
    int adadelta = c->kind == KILN_OPT_ADADELTA;
    o.lr = or_default(c->lr, adam ? 1e-3 : adadelta ? 1.0 : 0.01);
    o.momentum = or_default(c->momentum, 0.9);
    o.beta1 = or_default(c->beta1, 0.9);
    o.beta2 = or_default(c->beta2, 0.999);
    o.rho = or_default(c->rho, adadelta ? 0.95 : 0.9);
    o.eps = or_default(c->eps, adadelta ? 1e-6 : 1e-8);
    return o;
}

kiln_optimizer *kiln_optimizer_new(kiln_context *ctx,
                                   const kiln_optimizer_config *cfg)
{
    const char *call = "kiln_optimizer_new";
    if (!ctx)
        return NULL;
    if (!cfg)
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: config is NULL", call);
    if ((unsigned)cfg->kind > KILN_OPT_ADADELTA)
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: unknown optimizer kind %d", call,
                                (int)cfg->kind);
    kiln_optimizer_config c = with_defaults(cfg);
    if (!(c.lr > 0) || !isfinite(c.lr) || !(c.eps > 0) ||
        !(c.weight_decay >= 0) || !isfinite(c.weight_decay) ||
        !(c.momentum >= 0 && c.momentum < 1) ||
        !(c.beta1 >= 0 && c.beta1 < 1) || !(c.beta2 >= 0 && c.beta2 < 1) ||
        !(c.rho >= 0 && c.rho < 1))
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: hyper-parameters out of range (lr %g, "
                                "momentum %g, beta1 %g, beta2 %g, rho %g, "
                                "eps %g, weight_decay %g)", call, c.lr,
                                c.momentum, c.beta1, c.beta2, c.rho, c.eps,
                                c.weight_decay);
    kiln_optimizer *opt = calloc(1, sizeof *opt);
    if (!opt)
        return kiln__error_null(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                "%s: out of host memory", call);
    opt->ctx = ctx;
    opt->cfg = c;
    return opt;
}

int64_t kiln_optimizer_steps(const kiln_optimizer *opt)
{
    return opt ? opt->steps : 0;
}

void kiln_optimizer_set_steps(kiln_optimizer *opt, int64_t steps)
{
    if (opt)
        opt->steps = steps < 0 ? 0 : steps;
}

static opt_entry *find_entry(kiln_optimizer *opt, const kiln_tensor *param)
{
    for (int i = 0; i < opt->count; i++)
        if (opt->entries[i].param == param)
            return &opt->entries[i];
    return NULL;
}

int kiln_optimizer_state(kiln_optimizer *opt, kiln_tensor *param,
                         kiln_tensor **state, int max)
{
    if (!opt)
        return 0;
    int n = state_count(opt->cfg.kind);
    opt_entry *e = find_entry(opt, param);
    for (int i = 0; i < n && i < max; i++)
        state[i] = e ? e->state[i] : NULL;
    return n;
}

static void entry_clear(opt_entry *e)
{
    kiln_tensor_free(e->state[0]);
    kiln_tensor_free(e->state[1]);
    e->state[0] = e->state[1] = NULL;
}

void kiln_optimizer_free(kiln_optimizer *opt)
{
    if (!opt)
        return;
    for (int i = 0; i < opt->count; i++)
        entry_clear(&opt->entries[i]);
    kiln_tensor_free(opt->scalars[0]);
    kiln_tensor_free(opt->scalars[1]);
    free(opt->entries);
    free(opt);
}

static int same_layout(const opt_entry *e, const kiln_tensor *p)
{
    return e->dtype == p->dtype && e->ndim == p->ndim &&
           memcmp(e->shape, p->shape, sizeof(int64_t) * (size_t)p->ndim) == 0;
}

/* The entry of @p with its state allocated (zeros); NULL after an error. */
static opt_entry *state_for(kiln_optimizer *opt, const char *call,
                            kiln_tensor *p)
{
    opt_entry *e = find_entry(opt, p);
    if (e && !same_layout(e, p))
        entry_clear(e);
    if (!e) {
        if (opt->count == opt->capacity) {
            int cap = opt->capacity ? 2 * opt->capacity : 8;
            opt_entry *grown = realloc(opt->entries, sizeof *grown * (size_t)cap);
            if (!grown)
                return kiln__error_null(opt->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                        "%s: out of host memory", call);
            opt->entries = grown;
            opt->capacity = cap;
        }
        e = &opt->entries[opt->count++];
        memset(e, 0, sizeof *e);
        e->param = p;
    }
    e->dtype = p->dtype;
    e->ndim = p->ndim;
    memcpy(e->shape, p->shape, sizeof(int64_t) * (size_t)p->ndim);
    for (int i = 0; i < state_count(opt->cfg.kind); i++) {
        if (e->state[i])
            continue;
        /* Zeroing the state inside a capture would zero it on every
         * replay. */
        if (opt->ctx->recording)
            return kiln__error_null(opt->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                    "%s: a parameter's first step cannot be "
                                    "recorded (its state would be reset on "
                                    "every replay); take one step first",
                                    call);
        e->state[i] = kiln__tensor_alloc(opt->ctx, call, p->dtype, p->ndim,
                                         p->shape);
        if (!e->state[i] || kiln_fill(e->state[i], 0.0) != KILN_OK) {
            entry_clear(e);
            return NULL;
        }
    }
    return e;
}

/* Checks one (param, grad) pair; returns the gradient to use (@g, or a
 * contiguous copy the caller frees when it differs from @g), NULL after an
 * error. */
static kiln_tensor *check_pair(kiln_context *ctx, const char *call, int i,
                               kiln_tensor *p, kiln_tensor *g)
{
    kiln_tensor *pg[2] = {p, g};
    if (!kiln__args(call, 2, pg))
        return NULL;
    char bp[160], bg[160];
    if (!kiln__is_float(p->dtype) || p->dtype != g->dtype)
        return kiln__error_null(ctx, KILN_ERROR_DTYPE,
                                "%s: parameter %d is %s and its gradient %s "
                                "(need the same float dtype)", call, i,
                                kiln_dtype_name(p->dtype),
                                kiln_dtype_name(g->dtype));
    if (p->ndim != g->ndim ||
        memcmp(p->shape, g->shape, sizeof(int64_t) * (size_t)p->ndim) != 0)
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: parameter %d is %s but its gradient %s",
                                call, i,
                                kiln__shape_string(p->ndim, p->shape, bp,
                                                   sizeof bp),
                                kiln__shape_string(g->ndim, g->shape, bg,
                                                   sizeof bg));
    /* The kernel writes p densely; a view of a parameter is refused
     * rather than updated through a hidden copy. */
    if (!kiln_tensor_is_contiguous(p))
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: parameter %d %s is not contiguous", call,
                                i, kiln__shape_string(p->ndim, p->shape, bp,
                                                      sizeof bp));
    return kiln_tensor_is_contiguous(g) ? g : kiln_contiguous_copy(g);
}

static void set_scalar(kiln_dtype t, double v, uint32_t *lo, uint32_t *hi)
{
    kiln__scalar_bits(t, v, lo, hi);
}

static kiln_status launch_update(kiln_optimizer *opt, const char *call,
                                 kiln_tensor *p, kiln_tensor *g,
                                 const opt_entry *e, double lr, double bc1,
                                 double bc2, kiln_tensor *scalars)
{
    const kiln_optimizer_config *c = &opt->cfg;
    int64_t n = kiln_tensor_numel(p);
    if (n == 0)
        return KILN_OK;
    kiln_dispatch d;
    kiln__dispatch_init(opt->ctx, &d, KILN_K_OPTIMIZER, p->dtype, n);
    kiln_optimizer_params *q = (kiln_optimizer_params *)d.params;
    kiln_tensor *s1 = e->state[0] ? e->state[0] : g;
    kiln_tensor *s2 = e->state[1] ? e->state[1] : g;
    kiln_dtype t = p->dtype;
    q->n = (int32_t)n;
    q->kind = c->kind;
    q->off_p = (int32_t)kiln__block_offset(p);
    q->off_g = (int32_t)kiln__block_offset(g);
    q->off_s1 = (int32_t)kiln__block_offset(s1);
    q->off_s2 = (int32_t)kiln__block_offset(s2);
    set_scalar(t, lr, &q->lr_lo, &q->lr_hi);
    set_scalar(t, c->momentum, &q->momentum_lo, &q->momentum_hi);
    set_scalar(t, c->ewa ? 1 - c->momentum : 1, &q->damp_lo, &q->damp_hi);
    set_scalar(t, c->beta1, &q->beta1_lo, &q->beta1_hi);
    set_scalar(t, c->beta2, &q->beta2_lo, &q->beta2_hi);
    set_scalar(t, c->rho, &q->rho_lo, &q->rho_hi);
    set_scalar(t, c->eps, &q->eps_lo, &q->eps_hi);
    set_scalar(t, c->weight_decay, &q->wd_lo, &q->wd_hi);
    set_scalar(t, bc1, &q->bc1_lo, &q->bc1_hi);
    set_scalar(t, bc2, &q->bc2_lo, &q->bc2_hi);
    set_scalar(t, 1 - c->beta1, &q->omb1_lo, &q->omb1_hi);
    set_scalar(t, 1 - c->beta2, &q->omb2_lo, &q->omb2_hi);
    set_scalar(t, 1 - c->rho, &q->omrho_lo, &q->omrho_hi);
    kiln__bind(&d, p, KILN_ACCESS_READ_WRITE);
    kiln__bind(&d, g, KILN_ACCESS_READ);
    kiln__bind(&d, s1, e->state[0] ? KILN_ACCESS_READ_WRITE : KILN_ACCESS_READ);
    kiln__bind(&d, s2, e->state[1] ? KILN_ACCESS_READ_WRITE : KILN_ACCESS_READ);
    if (scalars) {
        q->kind |= KILN_OPT_DEVICE_SCALARS;
        q->lr_lo = (uint32_t)kiln__block_offset(scalars);
        q->lr_hi = 0;
        kiln__bind(&d, scalars, KILN_ACCESS_READ);
    } else {
        kiln__bind(&d, g, KILN_ACCESS_READ);
    }
    return kiln__launch(opt->ctx, call, &d, -1);
}

/* One update of every parameter; @prepared: lr and the bias corrections
 * come from the device scalars and the step was counted already. */
static kiln_status step(kiln_optimizer *opt, const char *call, int n,
                        kiln_tensor *const *params, kiln_tensor *const *grads,
                        double lr, int prepared)
{
    if (!opt)
        return KILN_ERROR_INVALID_ARGUMENT;
    kiln_context *ctx = opt->ctx;
    if (n < 0 || (n > 0 && (!params || !grads)))
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: needs n >= 0 and arrays of n tensors, got "
                           "n = %d", call, n);
    if (lr < 0)
        lr = opt->cfg.lr;
    if (!isfinite(lr))
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: lr %g is not finite", call, lr);
    /* Bias corrections of step t = steps + 1, in double on the host. */
    double t = (double)(opt->steps + 1);
    double bc1 = 1 - pow(opt->cfg.beta1, t), bc2 = 1 - pow(opt->cfg.beta2, t);
    /* Check every pair and create every state first, so a bad argument
     * leaves all parameters untouched rather than half of them updated. */
    kiln_tensor **gs = calloc((size_t)(n ? n : 1), sizeof *gs);
    opt_entry **es = calloc((size_t)(n ? n : 1), sizeof *es);
    kiln_status s = gs && es ? KILN_OK : KILN_ERROR_OUT_OF_HOST_MEMORY;
    if (s != KILN_OK)
        kiln__error(ctx, s, "%s: out of host memory", call);
    for (int i = 0; i < n && s == KILN_OK; i++) {
        gs[i] = check_pair(ctx, call, i, params[i], grads[i]);
        if (!gs[i] || !state_for(opt, call, params[i]))
            s = ctx->status != KILN_OK ? ctx->status
                                       : KILN_ERROR_INVALID_ARGUMENT;
    }
    /* Entries are looked up only now: state_for may grow (move) the
     * table, so pointers taken in the loop above could dangle. */
    for (int i = 0; i < n && s == KILN_OK; i++)
        es[i] = find_entry(opt, params[i]);
    for (int i = 0; i < n && s == KILN_OK; i++) {
        kiln_tensor *sc = NULL;
        if (prepared) {
            sc = opt->scalars[params[i]->dtype == KILN_F64];
            if (!sc)
                s = kiln__error(ctx, KILN_ERROR_DTYPE,
                                "%s: no %s device scalars were prepared", call,
                                kiln_dtype_name(params[i]->dtype));
        }
        if (s == KILN_OK)
            s = launch_update(opt, call, params[i], gs[i], es[i], lr, bc1,
                              bc2, sc);
    }
    for (int i = 0; gs && i < n; i++)
        if (gs[i] && gs[i] != grads[i])
            kiln_tensor_free(gs[i]);
    free(gs);
    free(es);
    if (s == KILN_OK && !prepared)
        opt->steps++;
    return s;
}

kiln_status kiln_optimizer_step(kiln_optimizer *opt, int n,
                                kiln_tensor *const *params,
                                kiln_tensor *const *grads, double lr)
{
    return step(opt, "kiln_optimizer_step", n, params, grads, lr, 0);
}

kiln_status kiln_optimizer_step_prepared(kiln_optimizer *opt, int n,
                                         kiln_tensor *const *params,
                                         kiln_tensor *const *grads)
{
    const char *call = "kiln_optimizer_step_prepared";
    if (opt && !opt->scalars[0] && !opt->scalars[1])
        return kiln__error(opt->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: call kiln_optimizer_begin_step first", call);
    return step(opt, call, n, params, grads, -1.0, 1);
}

kiln_status kiln_optimizer_begin_step(kiln_optimizer *opt, double lr)
{
    const char *call = "kiln_optimizer_begin_step";
    if (!opt)
        return KILN_ERROR_INVALID_ARGUMENT;
    kiln_context *ctx = opt->ctx;
    if (ctx->recording)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: writes the device scalars from the host, so "
                           "it goes before a replay, not inside a capture",
                           call);
    if (lr < 0)
        lr = opt->cfg.lr;
    if (!isfinite(lr))
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: lr %g is not finite", call, lr);
    double t = (double)(opt->steps + 1);
    double v[3] = {lr, 1 - pow(opt->cfg.beta1, t), 1 - pow(opt->cfg.beta2, t)};
    for (int k = 0; k < 2; k++) {
        kiln_dtype dt = k ? KILN_F64 : KILN_F32;
        if (!kiln__dtype_supported(ctx, dt))
            continue;
        if (!opt->scalars[k]) {
            opt->scalars[k] = kiln__tensor_alloc(ctx, call, dt, 1,
                                                 (int64_t[]){3});
            if (!opt->scalars[k])
                return kiln_status_of(ctx);
        }
        float f[3] = {(float)v[0], (float)v[1], (float)v[2]};
        kiln_status s = kiln_tensor_write(opt->scalars[k], k ? (void *)v
                                                             : (void *)f,
                                          k ? sizeof v : sizeof f);
        if (s != KILN_OK)
            return s;
    }
    opt->steps++;
    return KILN_OK;
}

/* ---- gradient clipping --------------------------------------------------- */

/* sum(g^2) of every gradient, added on the device into one 0-D tensor of
 * the widest dtype among them; NULL after an error. */
static kiln_tensor *sum_of_squares(kiln_tensor *const *grads, int n,
                                   kiln_dtype wide)
{
    kiln_tensor *total = NULL;
    for (int i = 0; i < n; i++) {
        kiln_tensor *sq = kiln_square(grads[i]);
        kiln_tensor *part = kiln_sum(sq, 0, NULL, 0);
        kiln_tensor_free(sq);
        if (part && part->dtype != wide) {
            kiln_tensor *w = kiln_cast(part, wide);
            kiln_tensor_free(part);
            part = w;
        }
        if (!part) {
            kiln_tensor_free(total);
            return NULL;
        }
        if (!total) {
            total = part;
            continue;
        }
        kiln_tensor *next = kiln_add(total, part);
        kiln_tensor_free(total);
        kiln_tensor_free(part);
        if (!next)
            return NULL;
        total = next;
    }
    return total;
}

/* g = g * scale in place, through a 0-D tensor of g's dtype. */
static kiln_status scale_in_place(kiln_context *ctx, const char *call,
                                  kiln_tensor *g, double scale)
{
    kiln_tensor *k = kiln__tensor_alloc(ctx, call, g->dtype, 0, NULL);
    kiln_status s = k ? kiln_fill(k, scale) : ctx->status;
    kiln_tensor *prod = s == KILN_OK ? kiln_mul(g, k) : NULL;
    if (s == KILN_OK)
        s = prod ? kiln_copy(g, prod) : ctx->status;
    kiln_tensor_free(prod);
    kiln_tensor_free(k);
    return s;
}

static double read_scalar(kiln_tensor *t, kiln_status *s)
{
    if (t->dtype == KILN_F64) {
        double v = 0;
        *s = kiln_tensor_read(t, &v, sizeof v);
        return v;
    }
    float f = 0;
    *s = kiln_tensor_read(t, &f, sizeof f);
    return f;
}

kiln_status kiln_clip_grad_norm(kiln_tensor *const *grads, int n,
                                double max_norm, double *total_norm)
{
    const char *call = "kiln_clip_grad_norm";
    if (total_norm)
        *total_norm = 0;
    if (n <= 0 || !grads)
        return n == 0 ? KILN_OK : KILN_ERROR_INVALID_ARGUMENT;
    kiln_context *ctx = kiln__args(call, n, grads);
    if (!ctx)
        return grads[0] && grads[0]->ctx ? grads[0]->ctx->status
                                         : KILN_ERROR_INVALID_ARGUMENT;
    kiln_dtype wide = KILN_F32;
    for (int i = 0; i < n; i++) {
        if (!kiln__is_float(grads[i]->dtype))
            return kiln__error(ctx, KILN_ERROR_DTYPE,
                               "%s: gradient %d is %s, needs f32 or f64",
                               call, i, kiln_dtype_name(grads[i]->dtype));
        if (grads[i]->dtype == KILN_F64)
            wide = KILN_F64;
    }
    if (!(max_norm >= 0))
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: max_norm must be >= 0, got %g", call,
                           max_norm);
    kiln_tensor *total = sum_of_squares(grads, n, wide);
    if (!total)
        return ctx->status;
    /* One host read: whether and how much to scale depends on the norm. */
    kiln_status s;
    double norm = sqrt(read_scalar(total, &s));
    kiln_tensor_free(total);
    if (s != KILN_OK)
        return s;
    if (total_norm)
        *total_norm = norm;
    if (norm <= max_norm)
        return KILN_OK;
    /* Exactly max_norm / norm (PyTorch adds 1e-6 to the norm); a NaN or
     * infinite norm makes the gradients NaN, as PyTorch's does. */
    double scale = isfinite(norm) ? max_norm / norm : NAN;
    for (int i = 0; i < n && s == KILN_OK; i++)
        s = scale_in_place(ctx, call, grads[i], scale);
    return s;
}
