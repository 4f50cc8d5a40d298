/*
 * rnn_backward.c - backward through time for kiln_rnn_forward's tape.
 *
 * Layers are walked top to bottom, steps last to first.  Per step: one
 * KILN_K_RNN_CELL_BACKWARD dispatch turns dh (dy[t] + the carry from step
 * t+1) and dc into the gate pre-activation gradients dGX[t] / dGH[t], dc of
 * the previous step and GRU's direct dh z term, then one GEMM adds
 * dGH[t] @ w_hh to that carry (skipped at step 0 unless dh0 is wanted).
 * After the loop, all-step GEMMs give dW_ih = dGX^T x, dW_hh = dGH^T h_prev
 * and dx = dGX @ w_ih (the dy of the layer below); biases and peepholes are
 * row sums (reductions, no atomics).
 */
#include <stdlib.h>

#include "ops/rnn_internal.h"

/* Per-layer work tensors.  d holds the carries: [T+1, 2, N, H] with
 * d[t, 0] = dh into step t-1's output, d[t, 1] = dc; row T is dh_n / dc_n.
 * dg holds dGX [T, N, GH], then dGH (GRU only; otherwise dGH is dGX),
 * then the peephole products [T, N, 3H]. */
typedef struct bptt {
    kiln_context *ctx;
    const char *call;
    const kiln_rnn_tape *tp;
    int l;
    kiln_tensor *dy;          /* [T, N, H] view, unit inner stride, or NULL */
    kiln_tensor *d, *dg;
    int64_t off_dgh, off_dp;  /* element offsets inside dg             */
} bptt;

static kiln_status step_dispatch(const bptt *b, int64_t t, int flags)
{
    const kiln_rnn_tape *tp = b->tp;
    const rnn_layer_tape *lt = &tp->l[b->l];
    kiln_tensor *peep = tp->w[b->l].w_peep;
    int64_t nh = tp->N * tp->H, ngh = nh * tp->G;
    kiln_dispatch d;
    kiln__dispatch_init(b->ctx, &d, KILN_K_RNN_CELL_BACKWARD, tp->dtype, nh);
    kiln_rnn_cell_backward_params *p =
        (kiln_rnn_cell_backward_params *)d.params;
    p->mode = (int32_t)tp->o.kind;
    p->n = (int32_t)tp->N;
    p->h = (int32_t)tp->H;
    if (b->dy)
        flags |= KILN_RNN_F_DY;
    if (peep)
        flags |= KILN_RNN_F_PEEP;
    p->flags = flags;
    if (b->dy) {
        p->off_dy = (int32_t)(kiln__block_offset(b->dy) + t * b->dy->stride[0]);
        p->dy_row = (int32_t)b->dy->stride[1];
    }
    int32_t d0 = (int32_t)kiln__block_offset(b->d);
    p->off_dh_next = d0 + (int32_t)((t + 1) * 2 * nh);
    p->off_dc_next = p->off_dh_next + (int32_t)nh;
    p->off_dh_prev = d0 + (int32_t)(t * 2 * nh);
    p->off_dc_prev = p->off_dh_prev + (int32_t)nh;
    p->off_h_prev = (int32_t)(kiln__block_offset(lt->hs) + t * nh);
    p->off_h = p->off_h_prev + (int32_t)nh;
    if (lt->cs) {
        p->off_c_prev = (int32_t)(kiln__block_offset(lt->cs) + t * nh);
        p->off_c = p->off_c_prev + (int32_t)nh;
    }
    if (lt->acts)
        p->off_tape = (int32_t)(kiln__block_offset(lt->acts) + t * 4 * nh);
    p->off_peep = peep ? (int32_t)kiln__block_offset(peep) : 0;
    int32_t g0 = (int32_t)kiln__block_offset(b->dg);
    p->off_dgx = g0 + (int32_t)(t * ngh);
    p->off_dgh = g0 + (int32_t)(b->off_dgh + t * ngh);
    p->off_dpeep = g0 + (int32_t)(b->off_dp + t * 3 * nh);
    /* Unused slots are bound to dg (bound, never read). */
    kiln__bind(&d, b->dy ? b->dy : b->dg, KILN_ACCESS_READ);
    kiln__bind(&d, b->d, KILN_ACCESS_READ_WRITE);
    kiln__bind(&d, lt->hs, KILN_ACCESS_READ);
    kiln__bind(&d, lt->cs ? lt->cs : b->dg, KILN_ACCESS_READ);
    kiln__bind(&d, lt->acts ? lt->acts : b->dg, KILN_ACCESS_READ);
    kiln__bind(&d, peep ? peep : b->dg, KILN_ACCESS_READ);
    kiln__bind(&d, b->dg, KILN_ACCESS_WRITE);
    return kiln__launch(b->ctx, b->call, &d, -1);
}

/* The step loop of one layer; d and dg allocated, d row T set or flagged. */
static kiln_status run_bptt(bptt *b, int has_dhn, int has_dcn, int want_dh0)
{
    const kiln_rnn_tape *tp = b->tp;
    const rnn_layer_tape *lt = &tp->l[b->l];
    int64_t T = tp->T, nh = tp->N * tp->H, G = tp->G;
    for (int64_t t = T - 1; t >= 0; t--) {
        int flags = 0;
        if (t == T - 1 && !has_dhn)
            flags |= KILN_RNN_F_ZERO_DH;
        if (t == T - 1 && !has_dcn)
            flags |= KILN_RNN_F_ZERO_DC;
        if (t == 0 && !lt->has_h0)
            flags |= KILN_RNN_F_ZERO_H;
        if (t == 0 && !lt->has_c0)
            flags |= KILN_RNN_F_ZERO_C;
        kiln_status s = step_dispatch(b, t, flags);
        if (s != KILN_OK)
            return s;
        if (t == 0 && !want_dh0)
            break;
        kiln_tensor dgh, dh;
        rnn_sub(&dgh, b->dg, b->off_dgh + t * nh * G, 2,
                (int64_t[]){tp->N, G * tp->H});
        rnn_sub(&dh, b->d, t * 2 * nh, 2, (int64_t[]){tp->N, tp->H});
        if (!kiln_gemm(&dgh, 0, tp->w[b->l].w_hh, 0, 1.0, 1.0, &dh))
            return b->ctx->status;
    }
    return KILN_OK;
}

/* Sum over rows of the [R, C] block at @off of dg, as a new [C] tensor. */
static kiln_tensor *row_sum(const bptt *b, int64_t off, int64_t R, int64_t C)
{
    kiln_tensor v;
    rnn_sub(&v, b->dg, off, 2, (int64_t[]){R, C});
    return kiln_sum(&v, 1, (const int[]){0}, 0);
}

/* dW_hh = sum_t dGH[t]^T h_{t-1}; rows with a zero h_{-1} are left out. */
static kiln_tensor *grad_w_hh(const bptt *b)
{
    const kiln_rnn_tape *tp = b->tp;
    const rnn_layer_tape *lt = &tp->l[b->l];
    int64_t nh = tp->N * tp->H, ngh = nh * tp->G;
    int64_t t0 = lt->has_h0 ? 0 : 1, rows = (tp->T - t0) * tp->N;
    if (rows == 0) {
        kiln_tensor *z = kiln__tensor_alloc(b->ctx, b->call, tp->dtype, 2,
                                            (int64_t[]){tp->G * tp->H, tp->H});
        if (z && kiln_fill(z, 0) != KILN_OK) {
            kiln_tensor_free(z);
            z = NULL;
        }
        return z;
    }
    kiln_tensor dgh, hp;
    rnn_sub(&dgh, b->dg, b->off_dgh + t0 * ngh, 2,
            (int64_t[]){rows, tp->G * tp->H});
    rnn_sub(&hp, lt->hs, t0 * nh, 2, (int64_t[]){rows, tp->H});
    return kiln_gemm(&dgh, 1, &hp, 0, 1.0, 0.0, NULL);
}

/* Weight gradients of layer b->l into @dw (any may stay NULL on error). */
static kiln_status weight_grads(const bptt *b, kiln_rnn_weights *dw)
{
    const kiln_rnn_tape *tp = b->tp;
    const kiln_rnn_weights *w = &tp->w[b->l];
    int64_t TN = tp->T * tp->N, GH = tp->G * tp->H;
    kiln_tensor dgx, *x = tp->l[b->l].x;
    kiln_tensor xv;
    rnn_sub(&dgx, b->dg, 0, 2, (int64_t[]){TN, GH});
    rnn_sub(&xv, x, 0, 2, (int64_t[]){TN, x->shape[2]});
    dw->w_ih = kiln_gemm(&dgx, 1, &xv, 0, 1.0, 0.0, NULL);
    dw->w_hh = grad_w_hh(b);
    if (!dw->w_ih || !dw->w_hh)
        return b->ctx->status;
    if (w->b_ih && !(dw->b_ih = row_sum(b, 0, TN, GH)))
        return b->ctx->status;
    if (w->b_hh && !(dw->b_hh = row_sum(b, b->off_dgh, TN, GH)))
        return b->ctx->status;
    if (w->w_peep) {
        kiln_tensor *s = row_sum(b, b->off_dp, TN, 3 * tp->H);
        dw->w_peep = s ? kiln_reshape(s, 2, (int64_t[]){3, tp->H}) : NULL;
        kiln_tensor_free(s);
        if (!dw->w_peep)
            return b->ctx->status;
    }
    return KILN_OK;
}

/* Copies row 0 half @which (0 dh, 1 dc) of d into layer l of @out. */
static kiln_status initial_grad(const bptt *b, kiln_tensor *out, int which)
{
    int64_t nh = b->tp->N * b->tp->H, sh[2] = {b->tp->N, b->tp->H};
    kiln_tensor dst, src;
    rnn_sub(&dst, out, b->l * nh, 2, sh);
    rnn_sub(&src, b->d, which * nh, 2, sh);
    return kiln_copy(&dst, &src);
}

/* Row @l of [L, N, H] @t copied into d's row T half @which. */
static kiln_status final_grad(const bptt *b, kiln_tensor *t, int which)
{
    int64_t nh = b->tp->N * b->tp->H;
    kiln_tensor *s = kiln_slice(t, 0, b->l, b->l + 1, 1);
    kiln_tensor *r = s ? kiln_reshape(s, 2, (int64_t[]){b->tp->N, b->tp->H})
                       : NULL;
    kiln_status st = KILN_ERROR_OUT_OF_HOST_MEMORY;
    if (r) {
        kiln_tensor dst;
        rnn_sub(&dst, b->d, (b->tp->T * 2 + which) * nh, 2, r->shape);
        st = kiln_copy(&dst, r);
    } else if (b->ctx->status != KILN_OK) {
        st = b->ctx->status;
    }
    kiln_tensor_free(r);
    kiln_tensor_free(s);
    return st;
}

typedef struct bwd_out {
    kiln_tensor *dh_n, *dc_n;
    kiln_tensor *dh0, *dc0;   /* [L, N, H] being filled, or NULL        */
    kiln_rnn_weights *dw;
    int want_dx;
} bwd_out;

/* One layer: returns its dx ([T, N, I] time-major) when the layer below
 * or the caller needs it, else NULL with *st = KILN_OK. */
static kiln_tensor *layer_backward(bptt *b, const bwd_out *o, kiln_status *st)
{
    const kiln_rnn_tape *tp = b->tp;
    int64_t T = tp->T, nh = tp->N * tp->H, GH = tp->G * tp->H;
    int64_t TN = T * tp->N, size = TN * GH;
    kiln_tensor *dx = NULL;
    int lstm = tp->o.kind == KILN_LSTM;
    b->off_dgh = tp->o.kind == KILN_GRU ? size : 0;
    b->off_dp = b->off_dgh + size;
    if (tp->w[b->l].w_peep)
        size = b->off_dp + TN * 3 * tp->H;
    else
        size = b->off_dgh + size;
    b->d = kiln__tensor_alloc(b->ctx, b->call, tp->dtype, 1,
                              (int64_t[]){(T + 1) * 2 * nh});
    b->dg = kiln__tensor_alloc(b->ctx, b->call, tp->dtype, 1,
                               (int64_t[]){size});
    *st = b->ctx->status;
    if (!b->d || !b->dg)
        return NULL;
    if ((o->dh_n && (*st = final_grad(b, o->dh_n, 0)) != KILN_OK) ||
        (o->dc_n && lstm && (*st = final_grad(b, o->dc_n, 1)) != KILN_OK))
        return NULL;
    *st = run_bptt(b, o->dh_n != NULL, o->dc_n != NULL && lstm,
                   o->dh0 != NULL);
    if (*st == KILN_OK && o->dw)
        *st = weight_grads(b, &o->dw[b->l]);
    if (*st == KILN_OK && o->dh0)
        *st = initial_grad(b, o->dh0, 0);
    if (*st == KILN_OK && o->dc0)
        *st = initial_grad(b, o->dc0, 1);
    if (*st != KILN_OK || (b->l == 0 && !o->want_dx))
        return NULL;
    kiln_tensor dgx;
    rnn_sub(&dgx, b->dg, 0, 2, (int64_t[]){TN, GH});
    kiln_tensor *flat = kiln_gemm(&dgx, 0, tp->w[b->l].w_ih, 0, 1.0, 0.0,
                                  NULL);
    if (flat)
        dx = kiln_reshape(flat, 3, (int64_t[]){T, tp->N, flat->shape[1]});
    kiln_tensor_free(flat);
    if (!dx)
        *st = b->ctx->status;
    return dx;
}

static kiln_status check_grad(kiln_context *ctx, const char *call,
                              const char *what, const kiln_tensor *t,
                              kiln_dtype dt, int ndim, const int64_t *shape)
{
    char a[160], b[160];
    int ok = t->ctx == ctx && t->dtype == dt && t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->shape[i] == shape[i];
    if (ok)
        return KILN_OK;
    return kiln__error(ctx, KILN_ERROR_SHAPE,
                       "%s: %s is %s %s, expected %s %s (from the tape)", call,
                       what, kiln_dtype_name(t->dtype),
                       kiln__shape_string(t->ndim, t->shape, a, sizeof a),
                       kiln_dtype_name(dt),
                       kiln__shape_string(ndim, shape, b, sizeof b));
}

static kiln_status check_backward(const kiln_rnn_tape *tp, const char *call,
                                  kiln_tensor *dy, kiln_tensor *dh_n,
                                  kiln_tensor *dc_n)
{
    kiln_context *ctx = tp->ctx;
    kiln_status s = KILN_OK;
    int64_t ys[3] = {tp->T, tp->N, tp->H};
    int64_t ss[3] = {tp->o.layers, tp->N, tp->H};
    if (tp->o.batch_first) {
        ys[0] = tp->N;
        ys[1] = tp->T;
    }
    if (dy)
        s = check_grad(ctx, call, "dy", dy, tp->dtype, 3, ys);
    if (s == KILN_OK && dh_n)
        s = check_grad(ctx, call, "dh_n", dh_n, tp->dtype, 3, ss);
    if (s == KILN_OK && dc_n && tp->o.kind != KILN_LSTM)
        s = kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                        "%s: dc_n is for LSTM only", call);
    if (s == KILN_OK && dc_n)
        s = check_grad(ctx, call, "dc_n", dc_n, tp->dtype, 3, ss);
    return s;
}

/* dy as a time-major view with unit inner stride (a copy otherwise). */
static kiln_tensor *dy_time_major(kiln_tensor *dy, int batch_first)
{
    kiln_tensor *v = batch_first ? kiln_permute(dy, (const int[]){1, 0, 2})
                                 : kiln__tensor_view(dy);
    if (!v || v->stride[2] == 1)
        return v;
    kiln_tensor *c = kiln_contiguous_copy(v);
    kiln_tensor_free(v);
    return c;
}

static kiln_tensor *new_states(const kiln_rnn_tape *tp, const char *call)
{
    return kiln__tensor_alloc(tp->ctx, call, tp->dtype, 3,
                              (int64_t[]){tp->o.layers, tp->N, tp->H});
}

/* dx in the caller's layout from the time-major one (consumed). */
static kiln_tensor *caller_layout(kiln_tensor *dx, int batch_first)
{
    if (!dx || !batch_first)
        return dx;
    kiln_tensor *p = kiln_permute(dx, (const int[]){1, 0, 2});
    kiln_tensor *c = p ? kiln_contiguous_copy(p) : NULL;
    kiln_tensor_free(p);
    kiln_tensor_free(dx);
    return c;
}

static void free_weights(kiln_rnn_weights *w)
{
    kiln_tensor_free(w->w_ih);
    kiln_tensor_free(w->w_hh);
    kiln_tensor_free(w->b_ih);
    kiln_tensor_free(w->b_hh);
    kiln_tensor_free(w->w_peep);
    *w = (kiln_rnn_weights){0};
}

/*
 * Dispatches per layer: 1 kernel + 1 GEMM per step (no GEMM at step 0
 * unless dh0 is wanted), 1 copy per given dh_n / dc_n, then with @dw 2
 * GEMMs + 1 sum per bias and peephole set, 1 copy per dh0 / dc0, and 1
 * GEMM for dx (not for layer 0 unless dx is wanted); batch-first adds one
 * copy for dx (dy is read in place).
 */
kiln_status kiln_rnn_backward(kiln_rnn_tape *tape, kiln_tensor *dy,
                              kiln_tensor *dh_n, kiln_tensor *dc_n,
                              kiln_tensor **dx, kiln_tensor **dh0,
                              kiln_tensor **dc0, kiln_rnn_weights *dw)
{
    const char *call = "kiln_rnn_backward";
    if (dx)
        *dx = NULL;
    if (dh0)
        *dh0 = NULL;
    if (dc0)
        *dc0 = NULL;
    if (!tape)
        return KILN_ERROR_INVALID_ARGUMENT;
    const kiln_rnn_tape *tp = tape;
    kiln_context *ctx = tp->ctx;
    int L = tp->o.layers;
    if (dw)
        for (int l = 0; l < L; l++)
            dw[l] = (kiln_rnn_weights){0};
    kiln_tensor *opt[3] = {dy, dh_n, dc_n};
    for (int i = 0; i < 3; i++)
        if (opt[i] && !kiln__tensor_ctx(opt[i]))
            return ctx->status != KILN_OK ? ctx->status
                                          : KILN_ERROR_INVALID_ARGUMENT;
    kiln_status st = check_backward(tp, call, dy, dh_n, dc_n);
    if (st != KILN_OK)
        return st;
    bwd_out o = {dh_n, dc_n, NULL, NULL, dw, dx != NULL};
    kiln_tensor *cur = NULL, *top = dy ? dy_time_major(dy, tp->o.batch_first)
                                       : NULL;
    if ((dy && !top) || (dh0 && !(o.dh0 = new_states(tp, call))) ||
        (dc0 && tp->o.kind == KILN_LSTM && !(o.dc0 = new_states(tp, call))))
        goto fail;
    for (int l = L - 1; l >= 0; l--) {
        bptt b = {ctx, call, tp, l, l == L - 1 ? top : cur, NULL, NULL, 0, 0};
        kiln_tensor *next = layer_backward(&b, &o, &st);
        kiln_tensor_free(b.d);
        kiln_tensor_free(b.dg);
        kiln_tensor_free(cur);
        cur = next;
        if (st != KILN_OK)
            goto fail;
    }
    kiln_tensor_free(top);
    if (dx && !(*dx = caller_layout(cur, tp->o.batch_first))) {
        st = ctx->status;
        goto fail_out;
    }
    if (!dx)
        kiln_tensor_free(cur);
    if (dh0)
        *dh0 = o.dh0;
    if (dc0)
        *dc0 = o.dc0;
    return KILN_OK;
fail:
    kiln_tensor_free(top);
    kiln_tensor_free(cur);
fail_out:
    kiln_tensor_free(o.dh0);
    kiln_tensor_free(o.dc0);
    if (dw)
        for (int l = 0; l < L; l++)
            free_weights(&dw[l]);
    if (st == KILN_OK)
        st = ctx->status != KILN_OK ? ctx->status : KILN_ERROR_BACKEND;
    return st;
}
