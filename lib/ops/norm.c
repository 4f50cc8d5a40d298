/*
 * norm.c - batch normalisation, layer normalisation (both composed from the
 * reduce and elementwise ops, no kernels of their own) and local response
 * normalisation (kernels KILN_K_LRN / KILN_K_LRN_BACKWARD).
 *
 * Batch and layer norm share one core: statistics over some axes of x,
 * kept as size-1 dims so they broadcast back (the "stat" shape),
 *   mean = mean(x), var = mean((x - mean)^2) (biased),
 *   invstd = 1 / sqrt(var + eps), xhat = (x - mean) invstd,
 *   y = xhat * gamma + beta,
 * and the backward
 *   dbeta = sum(dy), dgamma = sum(dy xhat) over the "param" axes,
 *   dx = invstd (g - mean(g) - xhat mean(g xhat)), g = dy gamma,
 * the standard formula divided through by M.  Batch norm takes statistics
 * over every dim but 1, and its parameter axes are the same; layer norm
 * takes them over the last nnorm dims and sums parameters over the rest.
 * Composition costs a dozen small dispatches and temporaries per call; a
 * fused kernel can replace it when it shows up in a profile.
 */
#include <string.h>

#include "ops/ops.h"
#include "queue/kernels_norm.h"

/* ---- temporaries -------------------------------------------------------- */

/* Every intermediate goes in here and is freed at the end; a NULL (an op
 * that failed, its message already recorded) marks the whole call failed,
 * so the arithmetic below reads straight through without checks. */
#define MAX_TEMPS 48

typedef struct temps {
    kiln_tensor *t[MAX_TEMPS];
    int n, failed;
} temps;

static kiln_tensor *keep(temps *tp, kiln_tensor *t)
{
    if (!t || tp->n == MAX_TEMPS) {
        /* MAX_TEMPS exceeds what any path below keeps: a bug if hit. */
        if (t)
            kiln__error(t->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                        "kiln norm ops: more than %d temporaries", MAX_TEMPS);
        tp->failed = 1;
        kiln_tensor_free(t);
        return NULL;
    }
    tp->t[tp->n++] = t;
    return t;
}

static void temps_free(temps *tp)
{
    for (int i = 0; i < tp->n; i++)
        kiln_tensor_free(tp->t[i]);
    tp->n = 0;
}

/* A 0-D tensor holding @v, which broadcasts against anything.  Filled by
 * a kernel rather than written from the host, so the norm ops can be
 * recorded (host transfers are refused while recording). */
static kiln_tensor *scalar(temps *tp, kiln_context *ctx, kiln_dtype dtype,
                           double v)
{
    kiln_tensor *t = keep(tp, kiln_tensor_new(ctx, dtype, 0, NULL));
    if (t && kiln_fill(t, v) != KILN_OK)
        tp->failed = 1;
    return t;
}

/* ---- geometry ----------------------------------------------------------- */

typedef struct norm_geom {
    int nred, red[KILN_MAX_DIMS];      /* statistics axes                  */
    int npar, par[KILN_MAX_DIMS];      /* axes summed for dgamma / dbeta   */
    int stat_ndim;                     /* mean/invstd with kept dims       */
    int64_t stat_shape[KILN_MAX_DIMS];
    int save_ndim;                     /* save_mean / save_invstd          */
    int64_t save_shape[KILN_MAX_DIMS];
    int param_ndim;                    /* gamma / beta                     */
    int64_t param_shape[KILN_MAX_DIMS];
    int64_t m;                         /* elements per statistic           */
    int params_trailing;               /* gamma broadcasts as it is        */
} norm_geom;

static void batch_geom(const kiln_tensor *x, norm_geom *g)
{
    memset(g, 0, sizeof *g);
    g->m = 1;
    g->stat_ndim = x->ndim;
    for (int d = 0; d < x->ndim; d++) {
        g->stat_shape[d] = d == 1 ? x->shape[1] : 1;
        if (d == 1)
            continue;
        g->red[g->nred++] = d;
        g->par[g->npar++] = d;
        g->m *= x->shape[d];
    }
    g->save_ndim = g->param_ndim = 1;
    g->save_shape[0] = g->param_shape[0] = x->shape[1];
}

static void layer_geom(const kiln_tensor *x, int nnorm, norm_geom *g)
{
    memset(g, 0, sizeof *g);
    g->m = 1;
    int lead = x->ndim - nnorm;
    g->stat_ndim = x->ndim;
    for (int d = 0; d < x->ndim; d++) {
        if (d < lead) {
            g->par[g->npar++] = d;
            g->save_shape[g->save_ndim++] = x->shape[d];
            g->stat_shape[d] = x->shape[d];
        } else {
            g->red[g->nred++] = d;
            g->param_shape[g->param_ndim++] = x->shape[d];
            g->stat_shape[d] = 1;
            g->m *= x->shape[d];
        }
    }
    g->params_trailing = 1;
}

/* Is @t NULL (allowed: @optional) or of dtype @dt and exactly @shape? */
static kiln_status check_shaped(kiln_context *ctx, const char *call,
                                const char *what, const kiln_tensor *t,
                                int optional, kiln_dtype dt, int ndim,
                                const int64_t *shape)
{
    if (!t && optional)
        return KILN_OK;
    if (!t)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: %s is NULL", call, what);
    if (t->ctx != ctx)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: %s comes from another context", call, what);
    int ok = t->dtype == dt && t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++)
        ok = t->shape[d] == shape[d];
    if (ok)
        return KILN_OK;
    char a[160], b[160];
    kiln_status s = t->dtype != dt ? KILN_ERROR_DTYPE : KILN_ERROR_SHAPE;
    return kiln__error(ctx, s,
                       "%s: %s is %s %s, expected %s %s", call, what,
                       kiln_dtype_name(t->dtype),
                       kiln__shape_string(t->ndim, t->shape, a, sizeof a),
                       kiln_dtype_name(dt),
                       kiln__shape_string(ndim, shape, b, sizeof b));
}

static kiln_status check_float(kiln_context *ctx, const char *call,
                               const kiln_tensor *x)
{
    if (x->dtype == KILN_I32)
        return kiln__error(ctx, KILN_ERROR_DTYPE,
                           "%s: needs f32 or f64, got i32", call);
    return KILN_OK;
}

/* @t (a parameter or a saved statistic) viewed so it broadcasts against
 * x: with the stat shape, except layer norm's parameters, which are x's
 * trailing dims already.  NULL stays NULL without failing. */
static kiln_tensor *as_stat(temps *tp, kiln_tensor *t, const norm_geom *g,
                            int is_param)
{
    if (!t || (is_param && g->params_trailing))
        return t;
    return keep(tp, kiln_reshape(t, g->stat_ndim, g->stat_shape));
}

/* ---- the shared forward and backward ------------------------------------ */

/* xhat * gamma + beta, kept in @tp (release with take()). */
static kiln_tensor *affine(temps *tp, kiln_tensor *xc, kiln_tensor *invstd,
                           kiln_tensor *gamma, kiln_tensor *beta)
{
    kiln_tensor *y = keep(tp, kiln_mul(xc, invstd));
    if (gamma)
        y = keep(tp, kiln_mul(y, gamma));
    if (beta)
        y = keep(tp, kiln_add(y, beta));
    return y;
}

/* Removes @t from @tp so it survives temps_free(). */
static kiln_tensor *take(temps *tp, kiln_tensor *t)
{
    for (int i = 0; t && i < tp->n; i++)
        if (tp->t[i] == t) {
            tp->t[i] = tp->t[--tp->n];
            return t;
        }
    return NULL;
}

/* 1 / sqrt(var + eps).  There is no rsqrt op; this also rounds better. */
static kiln_tensor *invstd_of(temps *tp, kiln_context *ctx, kiln_tensor *var,
                              kiln_dtype dtype, double eps)
{
    kiln_tensor *ve = keep(tp, kiln_add(var, scalar(tp, ctx, dtype, eps)));
    kiln_tensor *sd = keep(tp, kiln_sqrt(ve));
    return keep(tp, kiln_div(scalar(tp, ctx, dtype, 1.0), sd));
}

/* mean and invstd (stat shape) of x over the geometry's axes; xc = x -
 * mean is returned too since the caller needs it next. */
static void batch_stats(temps *tp, kiln_context *ctx, kiln_tensor *x,
                        const norm_geom *g, double eps, kiln_tensor **mean,
                        kiln_tensor **var, kiln_tensor **invstd,
                        kiln_tensor **xc)
{
    *mean = keep(tp, kiln_mean(x, g->nred, g->red, 1));
    *xc = keep(tp, kiln_sub(x, *mean));
    *var = keep(tp, kiln_mean(keep(tp, kiln_square(*xc)), g->nred, g->red,
                              1));
    *invstd = invstd_of(tp, ctx, *var, x->dtype, eps);
}

/* Sum over @n axes; with none, a copy (kiln_sum would reduce them all). */
static kiln_tensor *sum_axes(kiln_tensor *t, int n, const int *axes)
{
    return n ? kiln_sum(t, n, axes, 0) : kiln_contiguous_copy(t);
}

typedef struct grads {
    kiln_tensor **dx, **dgamma, **dbeta;
} grads;

static kiln_status norm_backward(temps *tp, kiln_context *ctx,
                                 kiln_tensor *dy, kiln_tensor *x,
                                 kiln_tensor *gamma_b, kiln_tensor *mean_b,
                                 kiln_tensor *invstd_b, const norm_geom *g,
                                 grads out)
{
    kiln_tensor *xhat = keep(tp, kiln_mul(keep(tp, kiln_sub(x, mean_b)),
                                          invstd_b));
    kiln_tensor *dx = NULL, *dgamma = NULL, *dbeta = NULL;
    if (out.dbeta)
        dbeta = keep(tp, sum_axes(dy, g->npar, g->par));
    if (out.dgamma)
        dgamma = keep(tp, sum_axes(keep(tp, kiln_mul(dy, xhat)), g->npar,
                                   g->par));
    if (out.dx) {
        kiln_tensor *gy = gamma_b ? keep(tp, kiln_mul(dy, gamma_b)) : dy;
        kiln_tensor *mg = keep(tp, kiln_mean(gy, g->nred, g->red, 1));
        kiln_tensor *mgx = keep(tp, kiln_mean(keep(tp, kiln_mul(gy, xhat)),
                                              g->nred, g->red, 1));
        kiln_tensor *t = keep(tp, kiln_sub(gy, mg));
        t = keep(tp, kiln_sub(t, keep(tp, kiln_mul(xhat, mgx))));
        dx = keep(tp, kiln_mul(t, invstd_b));
    }
    if (tp->failed)
        return ctx->status;
    if (out.dx)
        *out.dx = take(tp, dx);
    if (out.dgamma)
        *out.dgamma = take(tp, dgamma);
    if (out.dbeta)
        *out.dbeta = take(tp, dbeta);
    return KILN_OK;
}

/* ---- batch norm --------------------------------------------------------- */

/* r = (1 - momentum) r + momentum * batch, written into @r in place. */
static kiln_status blend_into(temps *tp, kiln_context *ctx, kiln_tensor *r,
                              kiln_tensor *batch, double momentum)
{
    kiln_tensor *a = keep(tp, kiln_mul(r, scalar(tp, ctx, r->dtype,
                                                 1.0 - momentum)));
    kiln_tensor *b = keep(tp, kiln_mul(batch, scalar(tp, ctx, r->dtype,
                                                     momentum)));
    kiln_tensor *sum = keep(tp, kiln_add(a, b));
    return sum ? kiln_copy(r, sum) : ctx->status;
}

static kiln_status batch_norm_check(kiln_context *ctx, const char *call,
                                    kiln_tensor *x, kiln_tensor *const *cs,
                                    const char *const *names, int n,
                                    const norm_geom *g)
{
    if (check_float(ctx, call, x) != KILN_OK)
        return ctx->status;
    for (int i = 0; i < n; i++)
        if (check_shaped(ctx, call, names[i], cs[i], 1, x->dtype, 1,
                         g->param_shape) != KILN_OK)
            return ctx->status;
    return KILN_OK;
}

kiln_tensor *kiln_batch_norm(kiln_tensor *x, kiln_tensor *gamma,
                             kiln_tensor *beta, kiln_tensor *running_mean,
                             kiln_tensor *running_var, int training,
                             double momentum, double eps,
                             kiln_tensor **save_mean,
                             kiln_tensor **save_invstd)
{
    const char *call = "kiln_batch_norm";
    if (save_mean)
        *save_mean = NULL;
    if (save_invstd)
        *save_invstd = NULL;
    kiln_context *ctx = kiln__args(call, 1, &x);
    if (!ctx)
        return NULL;
    if (x->ndim < 2)
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: x must be [N, C, ...], got %d-D", call,
                                x->ndim);
    norm_geom g;
    batch_geom(x, &g);
    kiln_tensor *cs[4] = {gamma, beta, running_mean, running_var};
    static const char *const names[4] = {"gamma", "beta", "running_mean",
                                         "running_var"};
    if (batch_norm_check(ctx, call, x, cs, names, 4, &g) != KILN_OK)
        return NULL;
    if (!training && (!running_mean || !running_var))
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: inference needs running_mean and "
                                "running_var", call);
    if (training && g.m < 2) /* as PyTorch: no variance from one value */
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: training needs more than 1 value per "
                                "channel, got %lld", call, (long long)g.m);
    temps tp = {0};
    kiln_tensor *mean, *var, *invstd, *xc;
    if (training) {
        batch_stats(&tp, ctx, x, &g, eps, &mean, &var, &invstd, &xc);
    } else {
        mean = as_stat(&tp, running_mean, &g, 0);
        var = as_stat(&tp, running_var, &g, 0);
        invstd = invstd_of(&tp, ctx, var, x->dtype, eps);
        xc = keep(&tp, kiln_sub(x, mean));
    }
    kiln_tensor *y = affine(&tp, xc, invstd, as_stat(&tp, gamma, &g, 1),
                            as_stat(&tp, beta, &g, 1));
    kiln_status s = tp.failed ? ctx->status : KILN_OK;
    if (s == KILN_OK && training && running_mean)
        s = blend_into(&tp, ctx, running_mean,
                       keep(&tp, kiln_reshape(mean, 1, g.param_shape)),
                       momentum);
    if (s == KILN_OK && training && running_var) {
        /* The running variance is the unbiased one, as PyTorch keeps. */
        kiln_tensor *unbiased = keep(&tp, kiln_mul(
            keep(&tp, kiln_reshape(var, 1, g.param_shape)),
            scalar(&tp, ctx, x->dtype, (double)g.m / (double)(g.m - 1))));
        s = blend_into(&tp, ctx, running_var, unbiased, momentum);
    }
    if (s == KILN_OK && save_mean)
        *save_mean = kiln_reshape(mean, 1, g.save_shape);
    if (s == KILN_OK && save_invstd)
        *save_invstd = kiln_reshape(invstd, 1, g.save_shape);
    if (s == KILN_OK && ((save_mean && !*save_mean) ||
                         (save_invstd && !*save_invstd)))
        s = ctx->status;
    y = s == KILN_OK ? take(&tp, y) : NULL;
    temps_free(&tp);
    if (!y) {
        if (save_mean) {
            kiln_tensor_free(*save_mean);
            *save_mean = NULL;
        }
        if (save_invstd) {
            kiln_tensor_free(*save_invstd);
            *save_invstd = NULL;
        }
    }
    return y;
}

/* Clears the gradient outputs the caller asked for. */
static void grads_clear(grads out)
{
    if (out.dx)
        *out.dx = NULL;
    if (out.dgamma)
        *out.dgamma = NULL;
    if (out.dbeta)
        *out.dbeta = NULL;
}

/* The body both backward passes share: argument checks (layer norm over
 * the last @nnorm dims when @layer, else batch norm), then the gradients. */
static kiln_status backward(const char *call, int layer, int nnorm,
                            kiln_tensor *dy, kiln_tensor *x,
                            kiln_tensor *gamma, kiln_tensor *save_mean,
                            kiln_tensor *save_invstd, grads out)
{
    grads_clear(out);
    kiln_tensor *args[4] = {dy, x, save_mean, save_invstd};
    kiln_context *ctx = kiln__args(call, 4, args);
    if (!ctx)
        return x ? kiln_status_of(x->ctx) : KILN_ERROR_INVALID_ARGUMENT;
    if (layer && (nnorm < 1 || nnorm > x->ndim))
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: normalising %d dims of a %d-D tensor", call,
                           nnorm, x->ndim);
    if (!layer && x->ndim < 2)
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: x must be [N, C, ...], got %d-D", call,
                           x->ndim);
    norm_geom g;
    if (layer)
        layer_geom(x, nnorm, &g);
    else
        batch_geom(x, &g);
    if (check_float(ctx, call, x) != KILN_OK ||
        check_shaped(ctx, call, "dy", dy, 0, x->dtype, x->ndim, x->shape) ||
        check_shaped(ctx, call, "gamma", gamma, 1, x->dtype, g.param_ndim,
                     g.param_shape) ||
        check_shaped(ctx, call, "save_mean", save_mean, 0, x->dtype,
                     g.save_ndim, g.save_shape) ||
        check_shaped(ctx, call, "save_invstd", save_invstd, 0, x->dtype,
                     g.save_ndim, g.save_shape))
        return ctx->status;
    temps tp = {0};
    kiln_status s = norm_backward(&tp, ctx, dy, x, as_stat(&tp, gamma, &g, 1),
                                  as_stat(&tp, save_mean, &g, 0),
                                  as_stat(&tp, save_invstd, &g, 0), &g, out);
    temps_free(&tp);
    return s;
}

kiln_status kiln_batch_norm_backward(kiln_tensor *dy, kiln_tensor *x,
                                     kiln_tensor *gamma,
                                     kiln_tensor *save_mean,
                                     kiln_tensor *save_invstd,
                                     kiln_tensor **dx, kiln_tensor **dgamma,
                                     kiln_tensor **dbeta)
{
    return backward("kiln_batch_norm_backward", 0, 0, dy, x, gamma,
                    save_mean, save_invstd, (grads){dx, dgamma, dbeta});
}

/* ---- layer norm --------------------------------------------------------- */

kiln_tensor *kiln_layer_norm(kiln_tensor *x, int nnorm, kiln_tensor *gamma,
                             kiln_tensor *beta, double eps,
                             kiln_tensor **save_mean,
                             kiln_tensor **save_invstd)
{
    const char *call = "kiln_layer_norm";
    if (save_mean)
        *save_mean = NULL;
    if (save_invstd)
        *save_invstd = NULL;
    kiln_context *ctx = kiln__args(call, 1, &x);
    if (!ctx)
        return NULL;
    if (nnorm < 1 || nnorm > x->ndim)
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: normalising %d dims of a %d-D tensor",
                                call, nnorm, x->ndim);
    norm_geom g;
    layer_geom(x, nnorm, &g);
    if (check_float(ctx, call, x) ||
        check_shaped(ctx, call, "gamma", gamma, 1, x->dtype, g.param_ndim,
                     g.param_shape) ||
        check_shaped(ctx, call, "beta", beta, 1, x->dtype, g.param_ndim,
                     g.param_shape))
        return NULL;
    temps tp = {0};
    kiln_tensor *mean, *var, *invstd, *xc;
    batch_stats(&tp, ctx, x, &g, eps, &mean, &var, &invstd, &xc);
    kiln_tensor *y = affine(&tp, xc, invstd, gamma, beta);
    kiln_tensor *sm = NULL, *si = NULL;
    if (!tp.failed && save_mean)
        sm = kiln_reshape(mean, g.save_ndim, g.save_shape);
    if (!tp.failed && save_invstd)
        si = kiln_reshape(invstd, g.save_ndim, g.save_shape);
    int ok = !tp.failed && (!save_mean || sm) && (!save_invstd || si);
    y = ok ? take(&tp, y) : NULL;
    temps_free(&tp);
    if (!ok) {
        kiln_tensor_free(sm);
        kiln_tensor_free(si);
        return NULL;
    }
    if (save_mean)
        *save_mean = sm;
    if (save_invstd)
        *save_invstd = si;
    return y;
}

kiln_status kiln_layer_norm_backward(kiln_tensor *dy, kiln_tensor *x,
                                     int nnorm, kiln_tensor *gamma,
                                     kiln_tensor *save_mean,
                                     kiln_tensor *save_invstd,
                                     kiln_tensor **dx, kiln_tensor **dgamma,
                                     kiln_tensor **dbeta)
{
    return backward("kiln_layer_norm_backward", 1, nnorm, dy, x, gamma,
                    save_mean, save_invstd, (grads){dx, dgamma, dbeta});
}

/* ---- local response normalisation --------------------------------------- */

/* @t itself when contiguous, else a contiguous copy kept in @tp: the LRN
 * kernels walk channels by plain offsets. */
static kiln_tensor *dense(temps *tp, kiln_tensor *t)
{
    if (kiln_tensor_is_contiguous(t))
        return t;
    return keep(tp, kiln_contiguous_copy(t));
}

static kiln_status lrn_check(kiln_context *ctx, const char *call,
                             const kiln_tensor *x, int n)
{
    if (check_float(ctx, call, x) != KILN_OK)
        return ctx->status;
    if (x->ndim < 2)
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: x must be [N, C, ...], got %d-D", call,
                           x->ndim);
    if (n < 1)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: window size %d (must be >= 1)", call, n);
    return KILN_OK;
}

/* Launches LRN or its backward over x's geometry; @ins are the inputs
 * (contiguous), bound in order, then @out. */
static kiln_status lrn_launch(kiln_context *ctx, const char *call,
                              kiln_kernel_id kernel, kiln_tensor *const *ins,
                              int nin, kiln_tensor *out, int n, double alpha,
                              double beta, double k)
{
    const kiln_tensor *x = ins[0];
    int64_t numel = kiln_tensor_numel(out);
    if (numel == 0)
        return KILN_OK;
    kiln_dispatch d;
    kiln__dispatch_init(ctx, &d, kernel, x->dtype, numel);
    kiln_lrn_params *p = (kiln_lrn_params *)d.params;
    p->n = (int32_t)numel;
    p->channels = (int32_t)x->shape[1];
    p->inner = (int32_t)(numel / x->shape[0] / x->shape[1]);
    p->size = n;
    int32_t *offs[3] = {&p->off_a, &p->off_b, &p->off_c};
    for (int i = 0; i < nin; i++) {
        *offs[i] = (int32_t)kiln__block_offset(ins[i]);
        kiln__bind(&d, ins[i], KILN_ACCESS_READ);
    }
    p->off_out = (int32_t)kiln__block_offset(out);
    kiln__bind(&d, out, KILN_ACCESS_WRITE);
    kiln__scalar_bits(x->dtype, alpha, &p->alpha_lo, &p->alpha_hi);
    kiln__scalar_bits(x->dtype, beta, &p->beta_lo, &p->beta_hi);
    kiln__scalar_bits(x->dtype, k, &p->k_lo, &p->k_hi);
    return kiln__launch(ctx, call, &d, -1);
}

kiln_tensor *kiln_lrn(kiln_tensor *x, int n, double alpha, double beta,
                      double k)
{
    const char *call = "kiln_lrn";
    kiln_context *ctx = kiln__args(call, 1, &x);
    if (!ctx || lrn_check(ctx, call, x, n) != KILN_OK)
        return NULL;
    temps tp = {0};
    kiln_tensor *xd = dense(&tp, x);
    kiln_tensor *y = xd ? kiln__tensor_alloc(ctx, call, x->dtype, x->ndim,
                                             x->shape)
                        : NULL;
    if (y && lrn_launch(ctx, call, KILN_K_LRN, &xd, 1, y, n, alpha, beta,
                        k) != KILN_OK) {
        kiln_tensor_free(y);
        y = NULL;
    }
    temps_free(&tp);
    return y;
}

kiln_tensor *kiln_lrn_backward(kiln_tensor *dy, kiln_tensor *x, kiln_tensor *y,
                               int n, double alpha, double beta, double k)
{
    const char *call = "kiln_lrn_backward";
    kiln_tensor *args[3] = {dy, x, y};
    kiln_context *ctx = kiln__args(call, 3, args);
    if (!ctx || lrn_check(ctx, call, x, n) != KILN_OK ||
        check_shaped(ctx, call, "dy", dy, 0, x->dtype, x->ndim, x->shape) ||
        check_shaped(ctx, call, "y", y, 0, x->dtype, x->ndim, x->shape))
        return NULL;
    temps tp = {0};
    /* Kernel binding order: dy, x, y, dx. */
    kiln_tensor *ins[3] = {dense(&tp, dy), dense(&tp, x), dense(&tp, y)};
    kiln_tensor *dx = NULL;
    if (!tp.failed)
        dx = kiln__tensor_alloc(ctx, call, x->dtype, x->ndim, x->shape);
    if (dx && lrn_launch(ctx, call, KILN_K_LRN_BACKWARD, ins, 3, dx, n, alpha,
                         beta, k) != KILN_OK) {
        kiln_tensor_free(dx);
        dx = NULL;
    }
    temps_free(&tp);
    return dx;
}
