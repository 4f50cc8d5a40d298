/*
 * rnn.c - recurrent layers, forward: kiln_rnn_forward, kiln_rnn_cell and
 * the tape (backward through time is in rnn_backward.c).
 *
 * PyTorch layouts: w_ih [G*H, I], w_hh [G*H, H], biases [G*H], gate blocks
 * i f g o (LSTM) and r z n (GRU).  Per layer the input projection of all
 * steps is one GEMM (GX = x [T*N, I] @ w_ih^T); each step is then one GEMM
 * (GH = h_prev @ w_hh^T) and one fused KILN_K_RNN_CELL dispatch that adds
 * both biases, does the gate math and writes h straight into the output
 * sequence.  Step 0 with a zero initial state skips its GEMM (the kernel
 * is told GH and h_prev are zero), so with h0 = c0 = NULL a layer costs
 * exactly 2T dispatches; a given h0 / c0 adds one copy each and the step-0
 * GEMM.  See the kiln_rnn_forward comment for the whole count.
 */
#include <stdio.h>
#include <stdlib.h>

#include "ops/rnn_internal.h"

/* Is @t present with exactly @ndim dims of @shape and dtype @dt? */
static int shaped(const kiln_tensor *t, kiln_dtype dt, int ndim,
                  const int64_t *shape)
{
    if (t->dtype != dt || t->ndim != ndim)
        return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i])
            return 0;
    return 1;
}

static kiln_status bad_shape(kiln_context *ctx, const char *call,
                             const char *what, const kiln_tensor *t,
                             kiln_dtype dt, int ndim, const int64_t *want)
{
    char a[160], b[160];
    return kiln__error(ctx, KILN_ERROR_SHAPE, "%s: %s is %s %s, expected %s %s",
                       call, what, kiln_dtype_name(t->dtype),
                       kiln__shape_string(t->ndim, t->shape, a, sizeof a),
                       kiln_dtype_name(dt),
                       kiln__shape_string(ndim, want, b, sizeof b));
}

/* Checks layer @l's weights for input size @in; sets *H on layer 0 and
 * checks it matches on the others. */
static kiln_status check_weights(kiln_context *ctx, const char *call,
                                 const kiln_rnn_weights *w, int l,
                                 kiln_rnn_kind kind, kiln_dtype dt, int64_t in,
                                 int64_t *H)
{
    char what[64];
    if (!w->w_ih || !w->w_hh)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: layer %d: w_ih and w_hh are required", call,
                           l);
    kiln_tensor *all[5] = {w->w_ih, w->w_hh, w->b_ih, w->b_hh, w->w_peep};
    for (int i = 0; i < 5; i++)
        if (all[i] && (all[i]->ctx != ctx || !kiln__tensor_ctx(all[i])))
            return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                               "%s: layer %d: a weight comes from another "
                               "(or a destroyed) context", call, l);
    if (w->w_hh->ndim == 2 && l == 0)
        *H = w->w_hh->shape[1];
    int64_t gh = rnn_gates(kind) * *H;
    int64_t s_ih[2] = {gh, in}, s_hh[2] = {gh, *H}, s_b[1] = {gh};
    int64_t s_p[2] = {3, *H};
    snprintf(what, sizeof what, "layer %d w_ih", l);
    if (!shaped(w->w_ih, dt, 2, s_ih))
        return bad_shape(ctx, call, what, w->w_ih, dt, 2, s_ih);
    snprintf(what, sizeof what, "layer %d w_hh", l);
    if (!shaped(w->w_hh, dt, 2, s_hh))
        return bad_shape(ctx, call, what, w->w_hh, dt, 2, s_hh);
    snprintf(what, sizeof what, "layer %d b_ih", l);
    if (w->b_ih && !shaped(w->b_ih, dt, 1, s_b))
        return bad_shape(ctx, call, what, w->b_ih, dt, 1, s_b);
    snprintf(what, sizeof what, "layer %d b_hh", l);
    if (w->b_hh && !shaped(w->b_hh, dt, 1, s_b))
        return bad_shape(ctx, call, what, w->b_hh, dt, 1, s_b);
    if (w->w_peep && kind != KILN_LSTM)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: layer %d: peepholes are for LSTM only", call,
                           l);
    snprintf(what, sizeof what, "layer %d w_peep", l);
    if (w->w_peep && !shaped(w->w_peep, dt, 2, s_p))
        return bad_shape(ctx, call, what, w->w_peep, dt, 2, s_p);
    return KILN_OK;
}

/* A bias or peephole vector must be dense for the kernel; a strided one
 * is copied (once per call, not per step). */
static kiln_tensor *dense(kiln_tensor *t, int *owned)
{
    *owned = 0;
    if (!t || kiln_tensor_is_contiguous(t))
        return t;
    *owned = 1;
    return kiln_contiguous_copy(t);
}

/* Everything one step of one layer touches. */
typedef struct rnn_step {
    kiln_context *ctx;
    const char *call;
    kiln_rnn_kind kind;
    int64_t N, H, G;
    kiln_tensor *gx;            /* [T, N, G*H]                           */
    kiln_tensor *gh;            /* [N, G*H] or NULL (step 0, zero h0)    */
    kiln_tensor *hs, *cs;       /* [S, N, H]: read row t, write row t+1  */
    kiln_tensor *acts;          /* [T, N, 4H] or NULL                    */
    kiln_tensor *b_ih, *b_hh, *peep; /* dense, or NULL                   */
} rnn_step;

static kiln_status cell_dispatch(const rnn_step *s, int64_t t, int flags)
{
    int64_t nh = s->N * s->H, row = s->N * s->G * s->H;
    kiln_dispatch d;
    kiln__dispatch_init(s->ctx, &d, KILN_K_RNN_CELL, s->gx->dtype, nh);
    kiln_rnn_cell_params *p = (kiln_rnn_cell_params *)d.params;
    p->mode = (int32_t)s->kind;
    p->n = (int32_t)s->N;
    p->h = (int32_t)s->H;
    if (s->b_ih)
        flags |= KILN_RNN_F_BIH;
    if (s->b_hh)
        flags |= KILN_RNN_F_BHH;
    if (s->peep)
        flags |= KILN_RNN_F_PEEP;
    if (s->acts)
        flags |= KILN_RNN_F_TAPE;
    p->flags = flags;
    /* Unused bindings get gx: bound (Vulkan wants every slot) but unread. */
    kiln_tensor *gx = s->gx;
    p->off_gx = (int32_t)(kiln__block_offset(gx) + t * row);
    p->off_gh = s->gh ? (int32_t)kiln__block_offset(s->gh) : 0;
    p->off_h_prev = (int32_t)(kiln__block_offset(s->hs) + t * nh);
    p->off_h_out = p->off_h_prev + (int32_t)nh;
    if (s->cs) {
        p->off_c_prev = (int32_t)(kiln__block_offset(s->cs) + t * nh);
        p->off_c_out = p->off_c_prev + (int32_t)nh;
    }
    if (s->acts)
        p->off_tape = (int32_t)(kiln__block_offset(s->acts) + t * 4 * nh);
    p->off_bih = s->b_ih ? (int32_t)kiln__block_offset(s->b_ih) : 0;
    p->off_bhh = s->b_hh ? (int32_t)kiln__block_offset(s->b_hh) : 0;
    p->off_peep = s->peep ? (int32_t)kiln__block_offset(s->peep) : 0;
    kiln__bind(&d, gx, KILN_ACCESS_READ);
    kiln__bind(&d, s->gh ? s->gh : gx, KILN_ACCESS_READ);
    kiln__bind(&d, s->hs, KILN_ACCESS_READ_WRITE);
    kiln__bind(&d, s->cs ? s->cs : gx,
               s->cs ? KILN_ACCESS_READ_WRITE : KILN_ACCESS_READ);
    kiln__bind(&d, s->acts ? s->acts : gx,
               s->acts ? KILN_ACCESS_WRITE : KILN_ACCESS_READ);
    kiln__bind(&d, s->b_ih ? s->b_ih : gx, KILN_ACCESS_READ);
    kiln__bind(&d, s->b_hh ? s->b_hh : gx, KILN_ACCESS_READ);
    kiln__bind(&d, s->peep ? s->peep : gx, KILN_ACCESS_READ);
    return kiln__launch(s->ctx, s->call, &d, -1);
}

/* Runs steps 0..T-1 of one layer; gx and hs/cs (row 0 set or flagged)
 * are ready.  Per step: GEMM (skipped at step 0 when h is zero) + cell. */
static kiln_status run_steps(rnn_step *s, kiln_tensor *w_hh, int64_t T,
                             int zero_h0, int zero_c0)
{
    int64_t nh = s->N * s->H;
    kiln_tensor hrow, *gh = s->gh;
    for (int64_t t = 0; t < T; t++) {
        int flags = 0;
        if (t == 0 && zero_h0)
            flags |= KILN_RNN_F_ZERO_H;
        if (t == 0 && zero_c0)
            flags |= KILN_RNN_F_ZERO_C;
        s->gh = (flags & KILN_RNN_F_ZERO_H) ? NULL : gh;
        if (s->gh) {
            rnn_sub(&hrow, s->hs, t * nh, 2, (int64_t[]){s->N, s->H});
            if (!kiln_gemm(&hrow, 0, w_hh, 1, 1.0, 0.0, s->gh))
                return s->ctx->status;
        }
        kiln_status st = cell_dispatch(s, t, flags);
        if (st != KILN_OK)
            return st;
    }
    s->gh = gh;
    return KILN_OK;
}

/* Copies @src ([N, H] view, may be NULL) into row 0 of @state. */
static kiln_status set_row0(kiln_tensor *state, kiln_tensor *src)
{
    if (!src)
        return KILN_OK;
    kiln_tensor row;
    rnn_sub(&row, state, 0, 2, src->shape);
    return kiln_copy(&row, src);
}

/* One layer over the whole sequence: x [T, N, I] contiguous; h0/c0 [N, H]
 * views or NULL.  Fills lt (hs, cs, acts when @save). */
static kiln_status run_layer(kiln_context *ctx, const char *call,
                             kiln_rnn_kind kind, const kiln_rnn_weights *w,
                             kiln_tensor *x, kiln_tensor *h0, kiln_tensor *c0,
                             int save, int64_t H, rnn_layer_tape *lt)
{
    int64_t T = x->shape[0], N = x->shape[1], G = rnn_gates(kind);
    int own_bi = 0, own_bh = 0, own_p = 0;
    kiln_tensor x2, *gx = NULL, *gh = NULL;
    rnn_step s = {ctx, call, kind, N, H, G, NULL, NULL, NULL, NULL, NULL,
                  NULL, NULL, NULL};
    kiln_status st = KILN_ERROR_OUT_OF_DEVICE_MEMORY;
    kiln_dtype dt = x->dtype;
    lt->has_h0 = h0 != NULL;
    lt->has_c0 = c0 != NULL;
    lt->hs = kiln__tensor_alloc(ctx, call, dt, 3, (int64_t[]){T + 1, N, H});
    if (kind == KILN_LSTM)
        lt->cs = kiln__tensor_alloc(ctx, call, dt, 3,
                                    (int64_t[]){T + 1, N, H});
    if (save && kind != KILN_RNN_TANH && kind != KILN_RNN_RELU)
        lt->acts = kiln__tensor_alloc(ctx, call, dt, 3,
                                      (int64_t[]){T, N, 4 * H});
    if (!lt->hs || (kind == KILN_LSTM && !lt->cs) ||
        (save && G > 1 && !lt->acts))
        goto out;
    rnn_sub(&x2, x, 0, 2, (int64_t[]){T * N, x->shape[2]});
    gx = kiln_gemm(&x2, 0, w->w_ih, 1, 1.0, 0.0, NULL);
    if (T > 1 || h0)
        gh = kiln__tensor_alloc(ctx, call, dt, 2, (int64_t[]){N, G * H});
    if (!gx || ((T > 1 || h0) && !gh))
        goto out;
    s.gx = gx;
    s.gh = gh;
    s.hs = lt->hs;
    s.cs = lt->cs;
    s.acts = lt->acts;
    s.b_ih = dense(w->b_ih, &own_bi);
    s.b_hh = dense(w->b_hh, &own_bh);
    s.peep = dense(w->w_peep, &own_p);
    if ((w->b_ih && !s.b_ih) || (w->b_hh && !s.b_hh) ||
        (w->w_peep && !s.peep))
        goto out;
    if ((st = set_row0(lt->hs, h0)) != KILN_OK ||
        (lt->cs && (st = set_row0(lt->cs, c0)) != KILN_OK))
        goto out;
    st = run_steps(&s, w->w_hh, T, !h0, !c0);
out:
    if (st == KILN_ERROR_OUT_OF_DEVICE_MEMORY && ctx->status != KILN_OK)
        st = ctx->status;
    if (own_bi)
        kiln_tensor_free(s.b_ih);
    if (own_bh)
        kiln_tensor_free(s.b_hh);
    if (own_p)
        kiln_tensor_free(s.peep);
    kiln_tensor_free(gx);
    kiln_tensor_free(gh);
    return st;
}

void kiln_rnn_tape_free(kiln_rnn_tape *tape)
{
    if (!tape)
        return;
    for (int l = 0; l < tape->o.layers; l++) {
        if (tape->w) {
            kiln_tensor_free(tape->w[l].w_ih);
            kiln_tensor_free(tape->w[l].w_hh);
            kiln_tensor_free(tape->w[l].b_ih);
            kiln_tensor_free(tape->w[l].b_hh);
            kiln_tensor_free(tape->w[l].w_peep);
        }
        if (tape->l) {
            kiln_tensor_free(tape->l[l].x);
            kiln_tensor_free(tape->l[l].hs);
            kiln_tensor_free(tape->l[l].cs);
            kiln_tensor_free(tape->l[l].acts);
        }
    }
    free(tape->w);
    free(tape->l);
    free(tape);
}

/* Checks x, h0, c0 and every layer's weights; fills the tape's header. */
static kiln_status check_forward(kiln_context *ctx, const char *call,
                                 kiln_tensor *x, kiln_tensor *h0,
                                 kiln_tensor *c0, const kiln_rnn_weights *w,
                                 const kiln_rnn_options *o, kiln_rnn_tape *hd)
{
    char a[160];
    if (!w || !o)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: weights and options are required", call);
    if ((unsigned)o->kind > KILN_GRU || o->layers < 0)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: unknown kind %d or %d layers", call,
                           (int)o->kind, o->layers);
    if (!kiln__is_float(x->dtype) || x->ndim != 3)
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: x must be a 3-D f32 or f64 tensor, got %s %s",
                           call, kiln_dtype_name(x->dtype),
                           kiln__shape_string(x->ndim, x->shape, a, sizeof a));
    hd->o = *o;
    hd->o.layers = o->layers ? o->layers : 1;
    hd->dtype = x->dtype;
    hd->T = x->shape[o->batch_first ? 1 : 0];
    hd->N = x->shape[o->batch_first ? 0 : 1];
    hd->I = x->shape[2];
    hd->G = rnn_gates(o->kind);
    hd->H = 0;
    if (hd->T < 1 || hd->N < 1 || hd->I < 1)
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: x %s has an empty dimension", call,
                           kiln__shape_string(x->ndim, x->shape, a, sizeof a));
    for (int l = 0; l < hd->o.layers; l++) {
        kiln_status s = check_weights(ctx, call, &w[l], l, o->kind, x->dtype,
                                      l ? hd->H : hd->I, &hd->H);
        if (s != KILN_OK)
            return s;
    }
    if (hd->H < 1)
        return kiln__error(ctx, KILN_ERROR_SHAPE, "%s: hidden size is 0",
                           call);
    int64_t st[3] = {hd->o.layers, hd->N, hd->H};
    if (h0 && !shaped(h0, x->dtype, 3, st))
        return bad_shape(ctx, call, "h0", h0, x->dtype, 3, st);
    if (c0 && o->kind != KILN_LSTM)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: c0 is for LSTM only", call);
    if (c0 && !shaped(c0, x->dtype, 3, st))
        return bad_shape(ctx, call, "c0", c0, x->dtype, 3, st);
    return KILN_OK;
}

/* Row @l of a [L, N, H] tensor as an [N, H] view (held), or NULL. */
static kiln_tensor *layer_row(kiln_tensor *t, int l, kiln_status *st)
{
    if (!t)
        return NULL;
    kiln_tensor *s = kiln_slice(t, 0, l, l + 1, 1);
    kiln_tensor *v = NULL;
    if (s) {
        v = kiln__tensor_view(s);
        if (v) {
            v->ndim = 2;
            v->shape[0] = s->shape[1];
            v->shape[1] = s->shape[2];
            v->stride[0] = s->stride[1];
            v->stride[1] = s->stride[2];
        }
        kiln_tensor_free(s);
    }
    if (!v)
        *st = t->ctx->status;
    return v;
}

/* [L, N, H] from row T of each layer's state (h or c). */
static kiln_tensor *final_states(kiln_context *ctx, const char *call,
                                 const kiln_rnn_tape *tp, int cell)
{
    int64_t T = tp->T, nh = tp->N * tp->H;
    kiln_tensor *out = kiln__tensor_alloc(ctx, call, tp->dtype, 3,
                                          (int64_t[]){tp->o.layers, tp->N,
                                                      tp->H});
    for (int l = 0; out && l < tp->o.layers; l++) {
        kiln_tensor dst, src;
        int64_t sh[2] = {tp->N, tp->H};
        rnn_sub(&dst, out, l * nh, 2, sh);
        rnn_sub(&src, cell ? tp->l[l].cs : tp->l[l].hs, T * nh, 2, sh);
        if (kiln_copy(&dst, &src) != KILN_OK) {
            kiln_tensor_free(out);
            out = NULL;
        }
    }
    return out;
}

/* The output sequence: rows 1..T of the last layer's hs, in the caller's
 * layout (batch-first needs one copy). */
static kiln_tensor *output_sequence(const kiln_rnn_tape *tp)
{
    kiln_tensor *hs = tp->l[tp->o.layers - 1].hs;
    kiln_tensor *y = kiln__tensor_view(hs);
    if (!y)
        return NULL;
    y->shape[0] = tp->T;
    y->offset += tp->N * tp->H;
    if (!tp->o.batch_first)
        return y;
    kiln_tensor *p = kiln_permute(y, (const int[]){1, 0, 2});
    kiln_tensor_free(y);
    if (!p || kiln_tensor_is_contiguous(p)) /* T = 1 or N = 1: a view */
        return p;
    kiln_tensor *c = kiln_contiguous_copy(p);
    kiln_tensor_free(p);
    return c;
}

/* Time-major contiguous x (held view or copy). */
static kiln_tensor *time_major(kiln_tensor *x, int batch_first)
{
    kiln_tensor *v = batch_first ? kiln_permute(x, (const int[]){1, 0, 2})
                                 : kiln__tensor_view(x);
    if (!v || kiln_tensor_is_contiguous(v))
        return v;
    kiln_tensor *c = kiln_contiguous_copy(v);
    kiln_tensor_free(v);
    return c;
}

/* Holds views of every weight so the tape outlives the caller's handles. */
static kiln_status hold_weights(kiln_rnn_tape *tp, const kiln_rnn_weights *w)
{
    for (int l = 0; l < tp->o.layers; l++) {
        tp->w[l].w_ih = rnn_hold(w[l].w_ih);
        tp->w[l].w_hh = rnn_hold(w[l].w_hh);
        tp->w[l].b_ih = rnn_hold(w[l].b_ih);
        tp->w[l].b_hh = rnn_hold(w[l].b_hh);
        tp->w[l].w_peep = rnn_hold(w[l].w_peep);
        if (!tp->w[l].w_ih || !tp->w[l].w_hh ||
            (w[l].b_ih && !tp->w[l].b_ih) || (w[l].b_hh && !tp->w[l].b_hh) ||
            (w[l].w_peep && !tp->w[l].w_peep))
            return tp->ctx->status;
    }
    return KILN_OK;
}

/*
 * Dispatches (all counted by kiln_context_get_stats): per layer, 1 GEMM for
 * the input projection + 2 per step (GEMM + cell), minus the step-0 GEMM
 * when that layer's h0 is zero, plus 1 copy per given h0 and c0.  Then 1
 * copy of x when it is not time-major contiguous (batch_first with T > 1
 * and N > 1), 1 copy of the output in that case too, and 1 copy per layer
 * for each of h_n, c_n requested.  So time-major, h0 = c0 = NULL, no h_n/c_n: 2T per layer.
 */
kiln_tensor *kiln_rnn_forward(kiln_tensor *x, kiln_tensor *h0, kiln_tensor *c0,
                              const kiln_rnn_weights *w,
                              const kiln_rnn_options *o, kiln_tensor **h_n,
                              kiln_tensor **c_n, kiln_rnn_tape **tape)
{
    const char *call = "kiln_rnn_forward";
    kiln_tensor *y = NULL;
    if (h_n)
        *h_n = NULL;
    if (c_n)
        *c_n = NULL;
    if (tape)
        *tape = NULL;
    kiln_context *ctx = kiln__args(call, 1, &x);
    if (!ctx)
        return NULL;
    kiln_tensor *opt[2] = {h0, c0};
    for (int i = 0; i < 2; i++)
        if (opt[i] && (opt[i]->ctx != ctx || !kiln__tensor_ctx(opt[i])))
            return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                    "%s: %s comes from another context", call,
                                    i ? "c0" : "h0");
    kiln_rnn_tape *tp = calloc(1, sizeof *tp);
    if (!tp)
        return kiln__error_null(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                "%s: out of host memory", call);
    tp->ctx = ctx;
    if (check_forward(ctx, call, x, h0, c0, w, o, tp) != KILN_OK)
        goto fail;
    int L = tp->o.layers;
    tp->w = calloc((size_t)L, sizeof *tp->w);
    tp->l = calloc((size_t)L, sizeof *tp->l);
    if (!tp->w || !tp->l) {
        kiln__error(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                    "%s: out of host memory", call);
        goto fail;
    }
    if (hold_weights(tp, w) != KILN_OK)
        goto fail;
    tp->l[0].x = time_major(x, o->batch_first);
    if (!tp->l[0].x)
        goto fail;
    for (int l = 0; l < L; l++) {
        kiln_status st = KILN_OK;
        kiln_tensor *h = layer_row(h0, l, &st), *c = layer_row(c0, l, &st);
        if (st == KILN_OK && l > 0) {
            tp->l[l].x = kiln__tensor_view(tp->l[l - 1].hs);
            if (tp->l[l].x) {
                tp->l[l].x->shape[0] = tp->T;
                tp->l[l].x->offset += tp->N * tp->H;
            }
        }
        if (st == KILN_OK && tp->l[l].x)
            st = run_layer(ctx, call, o->kind, &tp->w[l], tp->l[l].x, h, c,
                           tape != NULL, tp->H, &tp->l[l]);
        kiln_tensor_free(h);
        kiln_tensor_free(c);
        if (st != KILN_OK || !tp->l[l].x)
            goto fail;
    }
    y = output_sequence(tp);
    if (!y)
        goto fail;
    if (h_n && !(*h_n = final_states(ctx, call, tp, 0)))
        goto fail;
    if (c_n && o->kind == KILN_LSTM && !(*c_n = final_states(ctx, call, tp, 1)))
        goto fail;
    if (tape)
        *tape = tp;
    else
        kiln_rnn_tape_free(tp);
    return y;
fail:
    kiln_tensor_free(y);
    if (h_n) {
        kiln_tensor_free(*h_n);
        *h_n = NULL;
    }
    kiln_rnn_tape_free(tp);
    return NULL;
}

/* ---- one step ----------------------------------------------------------- */

/* A [2, N, H] state whose row 0 is @src (left unset when NULL: the
 * kernel then never reads it): the cell kernel reads row 0 and writes row
 * 1 of one binding.  Returns row 1 as a held [N, H] view. */
static kiln_tensor *state_pair(kiln_context *ctx, const char *call,
                               kiln_dtype dt, int64_t N, int64_t H,
                               kiln_tensor *src, kiln_tensor **pair)
{
    *pair = kiln__tensor_alloc(ctx, call, dt, 3, (int64_t[]){2, N, H});
    if (!*pair || set_row0(*pair, src) != KILN_OK)
        return NULL;
    kiln_tensor *out = kiln__tensor_view(*pair);
    if (out) {
        out->ndim = 2;
        out->shape[0] = N;
        out->shape[1] = H;
        out->stride[0] = H;
        out->stride[1] = 1;
        out->offset += N * H;
    }
    return out;
}

static kiln_status check_cell(kiln_context *ctx, const char *call,
                              kiln_tensor *x, kiln_tensor *h, kiln_tensor *c,
                              const kiln_rnn_weights *w, kiln_rnn_kind kind,
                              int64_t *H)
{
    char a[160];
    if (!w || (unsigned)kind > KILN_GRU)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: weights missing or unknown kind %d", call,
                           (int)kind);
    if (!kiln__is_float(x->dtype) || x->ndim != 2)
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: x must be a 2-D f32 or f64 tensor, got %s %s",
                           call, kiln_dtype_name(x->dtype),
                           kiln__shape_string(x->ndim, x->shape, a, sizeof a));
    *H = 0;
    kiln_status s = check_weights(ctx, call, w, 0, kind, x->dtype,
                                  x->shape[1], H);
    if (s != KILN_OK)
        return s;
    int64_t st[2] = {x->shape[0], *H};
    if (!shaped(h, x->dtype, 2, st))
        return bad_shape(ctx, call, "h", h, x->dtype, 2, st);
    if (kind == KILN_LSTM && !c)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: LSTM needs c", call);
    if (c && (c->ctx != ctx || !shaped(c, x->dtype, 2, st)))
        return bad_shape(ctx, call, "c", c, x->dtype, 2, st);
    return KILN_OK;
}

/* Dispatches: GEMM (x), GEMM (h), cell, plus one copy of h (GRU reads
 * h_prev) or of c (LSTM) into the kernel's state pair. */
kiln_tensor *kiln_rnn_cell(kiln_tensor *x, kiln_tensor *h, kiln_tensor *c,
                           const kiln_rnn_weights *w, kiln_rnn_kind kind,
                           kiln_tensor **c_out)
{
    const char *call = "kiln_rnn_cell";
    kiln_tensor *args[2] = {x, h};
    kiln_tensor *hpair = NULL, *cpair = NULL, *hout = NULL, *cview = NULL;
    kiln_tensor *gx = NULL, *gh = NULL;
    int own_bi = 0, own_bh = 0, own_p = 0;
    int64_t H;
    if (c_out)
        *c_out = NULL;
    kiln_context *ctx = kiln__args(call, 2, args);
    if (!ctx || check_cell(ctx, call, x, h, c, w, kind, &H) != KILN_OK)
        return NULL;
    int64_t N = x->shape[0], G = rnn_gates(kind);
    rnn_step s = {ctx, call, kind, N, H, G, NULL, NULL, NULL, NULL, NULL,
                  NULL, NULL, NULL};
    gx = kiln_gemm(x, 0, w->w_ih, 1, 1.0, 0.0, NULL);
    gh = kiln_gemm(h, 0, w->w_hh, 1, 1.0, 0.0, NULL);
    if (!gx || !gh)
        goto out;
    /* Only GRU reads h_prev in the kernel; only LSTM has a c. */
    hout = state_pair(ctx, call, x->dtype, N, H, kind == KILN_GRU ? h : NULL,
                      &hpair);
    if (!hout)
        goto out;
    if (kind == KILN_LSTM &&
        !(cview = state_pair(ctx, call, x->dtype, N, H, c, &cpair)))
        goto out;
    s.gx = gx;
    s.gh = gh;
    s.hs = hpair;
    s.cs = cpair;
    s.b_ih = dense(w->b_ih, &own_bi);
    s.b_hh = dense(w->b_hh, &own_bh);
    s.peep = dense(w->w_peep, &own_p);
    if ((w->b_ih && !s.b_ih) || (w->b_hh && !s.b_hh) ||
        (w->w_peep && !s.peep) || cell_dispatch(&s, 0, 0) != KILN_OK) {
        kiln_tensor_free(hout);
        hout = NULL;
    }
out:
    if (own_bi)
        kiln_tensor_free(s.b_ih);
    if (own_bh)
        kiln_tensor_free(s.b_hh);
    if (own_p)
        kiln_tensor_free(s.peep);
    if (hout && c_out)
        *c_out = cview;
    else
        kiln_tensor_free(cview);
    kiln_tensor_free(hpair);
    kiln_tensor_free(cpair);
    kiln_tensor_free(gx);
    kiln_tensor_free(gh);
    return hout;
}
