/*
 * conv.c - 2-D convolution (NCHW, PyTorch weight layout) and what is built
 * on it: its three gradients, conv1d and the transposed convolution.
 *
 * Convolution = IM2COL + the batched GEMM kernel.  Columns are laid out
 * [C*KH*KW][N][OH*OW], so group g's rows form one contiguous block
 * [Cg*KH*KW][N][P] (P = OH*OW) and
 *   forward:        y[n, g] = w[g] (OCg x CgKK) @ col[g][., n, .], one GEMM
 *                   per group batched over n;
 *   data gradient:  dcol[g][., n, .] = w[g]^T @ dy[n, g], then COL2IM
 *                   gathers each input pixel's column entries (no atomics,
 *                   so results are deterministic);
 *   weight grad.:   dw[g] = dyT[g] (OCg x N*P) @ col[g]^T, one GEMM per
 *                   group with N and P merged into K (dy is permuted to
 *                   [OC, N, P] once, a copy).
 * Groups loop on the host; depthwise (groups = C) takes the same path (a
 * dedicated depthwise kernel would avoid the tiny GEMMs: later).  A 1x1,
 * stride-1, unpadded convolution skips IM2COL/COL2IM: the image already is
 * its column matrix.  The column buffer is bounded (COL_LIMIT elements, or
 * the KILN_CONV_COL_LIMIT environment variable, read per call): larger
 * batches run in chunks of images.  The forward bias (one per output
 * channel, i.e. per row of a group's GEMM) and the graph's activation are
 * applied in the GEMM's epilogue, not by kernels of their own.
 */
#include <string.h>

#include "ops/ops.h"
#include "queue/kernels_conv.h"

#define COL_LIMIT ((int64_t)1 << 25)

typedef struct conv_geom {
    int64_t n, c, h, w;          /* input                                  */
    int64_t oc, kh, kw, groups;  /* weights [OC, C/groups, KH, KW]          */
    int64_t sh, sw, dh, dw;      /* stride, dilation                       */
    int64_t pt, pl;              /* top/left padding (bottom/right implied) */
    int64_t oh, ow;              /* output                                 */
} conv_geom;

static kiln_status check_pair(kiln_context *ctx, const char *call,
                              const kiln_tensor *a, const kiln_tensor *b)
{
    char sa[160], sb[160];
    if (a->ndim != 4 || b->ndim != 4)
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: operands %s and %s must be 4-D", call,
                           kiln__shape_string(a->ndim, a->shape, sa, sizeof sa),
                           kiln__shape_string(b->ndim, b->shape, sb,
                                              sizeof sb));
    if (a->dtype != b->dtype || !kiln__is_float(a->dtype))
        return kiln__error(ctx, KILN_ERROR_DTYPE,
                           "%s: operands are %s and %s (both f32 or both "
                           "f64 needed)", call, kiln_dtype_name(a->dtype),
                           kiln_dtype_name(b->dtype));
    return KILN_OK;
}

/* Resolves @p for input @xs [N, C, H, W] and weights @ws [OC, C/G, KH, KW]. */
static kiln_status conv_geometry(kiln_context *ctx, const char *call,
                                 const kiln_conv2d_params *p,
                                 const int64_t *xs, const int64_t *ws,
                                 conv_geom *g)
{
    kiln_conv2d_params q = p ? *p : (kiln_conv2d_params){0};
    char a[160], b[160];
    if (q.stride[0] < 0 || q.stride[1] < 0 || q.dilation[0] < 0 ||
        q.dilation[1] < 0 || q.groups < 0 || q.padding[0] < 0 ||
        q.padding[1] < 0 || (unsigned)q.mode > KILN_PAD_VALID)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: negative stride, padding, dilation or groups, "
                           "or unknown padding mode %d", call, (int)q.mode);
    *g = (conv_geom){
        .n = xs[0], .c = xs[1], .h = xs[2], .w = xs[3], .oc = ws[0],
        .kh = ws[2], .kw = ws[3], .groups = q.groups ? q.groups : 1,
        .sh = q.stride[0] ? q.stride[0] : 1,
        .sw = q.stride[1] ? q.stride[1] : 1,
        .dh = q.dilation[0] ? q.dilation[0] : 1,
        .dw = q.dilation[1] ? q.dilation[1] : 1};
    if (g->c % g->groups || g->oc % g->groups ||
        ws[1] * g->groups != g->c || g->kh < 1 || g->kw < 1)
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: input %s and weights %s do not fit %lld "
                           "groups (weights must be [OC, C/groups, KH, KW], "
                           "C and OC divisible by groups)", call,
                           kiln__shape_string(4, xs, a, sizeof a),
                           kiln__shape_string(4, ws, b, sizeof b),
                           (long long)g->groups);
    kiln__window_axis(g->h, g->kh, g->sh, g->dh, q.padding[0], q.mode, &g->pt,
                      &g->oh);
    kiln__window_axis(g->w, g->kw, g->sw, g->dw, q.padding[1], q.mode, &g->pl,
                      &g->ow);
    if (g->oh < 1 || g->ow < 1)
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: the %lldx%lld kernel (dilation %lldx%lld) is "
                           "larger than the padded %lldx%lld input", call,
                           (long long)g->kh, (long long)g->kw,
                           (long long)g->dh, (long long)g->dw,
                           (long long)g->h, (long long)g->w);
    return KILN_OK;
}

static kiln_status check_dy(kiln_context *ctx, const char *call,
                            const kiln_tensor *dy, const conv_geom *g)
{
    int64_t want[4] = {g->n, g->oc, g->oh, g->ow};
    char a[160], b[160];
    if (memcmp(dy->shape, want, sizeof want) != 0)
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: gradient is %s, the convolution's output is "
                           "%s", call,
                           kiln__shape_string(4, dy->shape, a, sizeof a),
                           kiln__shape_string(4, want, b, sizeof b));
    return KILN_OK;
}

static int is_pointwise(const conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 &&
           g->pt == 0 && g->pl == 0 && g->oh == g->h && g->ow == g->w;
}

/* Images per chunk so the column buffer stays under the limit. */
static kiln_status chunk_images(kiln_context *ctx, const char *call,
                                const conv_geom *g, int64_t *chunk)
{
    int64_t per = g->c * g->kh * g->kw * g->oh * g->ow;
    int64_t limit = kiln__env_long("KILN_CONV_COL_LIMIT", (long)COL_LIMIT);
    if (per > KILN_MAX_ELEMENTS)
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: one image's column matrix has %lld elements "
                           "(limit 2^31 - 1)", call, (long long)per);
    *chunk = per > 0 && limit / per > 1 ? limit / per : 1;
    if (*chunk > g->n)
        *chunk = g->n;
    return KILN_OK;
}

/* Images in the chunk that starts at image @n0. */
static int64_t chunk_len(const conv_geom *g, int64_t n0, int64_t chunk)
{
    return g->n - n0 < chunk ? g->n - n0 : chunk;
}

/* IM2COL (x -> col) or COL2IM (col -> x) of images [n0, n0 + nimg);
 * @x is seen through strides @xs, @col holds [CKK][nimg][P]. */
static kiln_status run_im2col(kiln_context *ctx, const char *call,
                              kiln_kernel_id kernel, const conv_geom *g,
                              kiln_tensor *x, const int64_t *xs, int64_t n0,
                              int64_t nimg, kiln_tensor *col)
{
    int64_t count = kernel == KILN_K_IM2COL
                        ? g->c * g->kh * g->kw * nimg * g->oh * g->ow
                        : nimg * g->c * g->h * g->w;
    if (count == 0)
        return KILN_OK;
    kiln_dispatch d;
    kiln__dispatch_init(ctx, &d, kernel, x->dtype, count);
    kiln_im2col_params *p = (kiln_im2col_params *)d.params;
    *p = (kiln_im2col_params){
        .n = (int32_t)count,
        .off_x = (int32_t)(kiln__block_offset(x) + n0 * xs[0]),
        .off_col = (int32_t)kiln__block_offset(col),
        .batch = (int32_t)nimg, .channels = (int32_t)g->c,
        .height = (int32_t)g->h, .width = (int32_t)g->w,
        .out_h = (int32_t)g->oh, .out_w = (int32_t)g->ow,
        .kernel_h = (int32_t)g->kh, .kernel_w = (int32_t)g->kw,
        .stride_h = (int32_t)g->sh, .stride_w = (int32_t)g->sw,
        .pad_top = (int32_t)g->pt, .pad_left = (int32_t)g->pl,
        .dil_h = (int32_t)g->dh, .dil_w = (int32_t)g->dw};
    for (int i = 0; i < 4; i++)
        p->x_stride[i] = (int32_t)xs[i];
    int fwd = kernel == KILN_K_IM2COL;
    kiln__bind(&d, fwd ? x : col, KILN_ACCESS_READ);
    kiln__bind(&d, fwd ? col : x, KILN_ACCESS_WRITE);
    return kiln__launch(ctx, call, &d, -1);
}

/* @t itself when contiguous, else a contiguous copy (free with drop()). */
static kiln_tensor *dense(kiln_tensor *t)
{
    return kiln_tensor_is_contiguous(t) ? t : kiln_contiguous_copy(t);
}

static void drop(kiln_tensor *copy, const kiln_tensor *orig)
{
    if (copy != orig)
        kiln_tensor_free(copy);
}

/* The column buffer for chunks of images, its chunk size in @chunk; NULL
 * after recording why. */
static kiln_tensor *col_alloc(kiln_context *ctx, const char *call,
                              kiln_dtype dtype, const conv_geom *g,
                              int64_t *chunk)
{
    if (chunk_images(ctx, call, g, chunk) != KILN_OK)
        return NULL;
    int64_t n = g->c * g->kh * g->kw * *chunk * g->oh * g->ow;
    return kiln__tensor_alloc(ctx, call, dtype, 1, &n);
}

/* Group @gi's epilogue: bias[gi * ocg + row] (the same for every
 * column and image), then @act. */
static kiln_gemm_epilogue group_epilogue(const kiln_tensor *bias, int act,
                                         int64_t gi, int64_t ocg)
{
    kiln_gemm_epilogue e = {bias, 0, 0, 0, act};
    if (bias) {
        e.off = gi * ocg * bias->stride[0];
        e.si = bias->stride[0];
    }
    return e;
}

/* y = act(conv(x, w) + bias) into a new [N, OC, OH, OW] tensor (@bias
 * [OC] or NULL, @act -1 for none), the bias and @act in the GEMM
 * epilogue. */
static kiln_status forward_into(kiln_context *ctx, const char *call,
                                const conv_geom *g, kiln_tensor *x,
                                kiln_tensor *w, const kiln_tensor *bias,
                                int act, kiln_tensor *y)
{
    int64_t P = g->oh * g->ow, ocg = g->oc / g->groups;
    int64_t cgk = g->c / g->groups * g->kh * g->kw, chunk;
    kiln_status s = KILN_OK;
    if (is_pointwise(g) && kiln_tensor_is_contiguous(x)) {
        for (int64_t gi = 0; gi < g->groups && s == KILN_OK; gi++) {
            kiln_matrix_view a = {w, gi * ocg * cgk, cgk, 1, 0};
            kiln_matrix_view b = {x, gi * cgk * P, P, 1, g->c * P};
            kiln_matrix_view c = {y, gi * ocg * P, P, 1, g->oc * P};
            kiln_gemm_epilogue e = group_epilogue(bias, act, gi, ocg);
            s = kiln__gemm_views(ctx, call, ocg, P, cgk, g->n, &a, &b, &c, 1,
                                 0, &e);
        }
        return s;
    }
    kiln_tensor *col = col_alloc(ctx, call, x->dtype, g, &chunk);
    if (!col)
        return ctx->status;
    for (int64_t n0 = 0; n0 < g->n && s == KILN_OK; n0 += chunk) {
        int64_t nc = chunk_len(g, n0, chunk);
        s = run_im2col(ctx, call, KILN_K_IM2COL, g, x, x->stride, n0, nc, col);
        for (int64_t gi = 0; gi < g->groups && s == KILN_OK; gi++) {
            kiln_matrix_view a = {w, gi * ocg * cgk, cgk, 1, 0};
            kiln_matrix_view b = {col, gi * cgk * nc * P, nc * P, 1, P};
            kiln_matrix_view c = {y, n0 * g->oc * P + gi * ocg * P, P, 1,
                                  g->oc * P};
            kiln_gemm_epilogue e = group_epilogue(bias, act, gi, ocg);
            s = kiln__gemm_views(ctx, call, ocg, P, cgk, nc, &a, &b, &c, 1, 0,
                                 &e);
        }
    }
    kiln_tensor_free(col);
    return s;
}

/* Is @bias (optional) a [@oc] tensor of @dtype from @ctx? */
static kiln_status check_bias(kiln_context *ctx, const char *call,
                              const kiln_tensor *bias, int64_t oc,
                              kiln_dtype dtype)
{
    char a[160];
    if (!bias || (bias->ctx == ctx && bias->ndim == 1 &&
                  bias->shape[0] == oc && bias->dtype == dtype))
        return KILN_OK;
    return kiln__error(ctx, KILN_ERROR_SHAPE,
                       "%s: bias must be a %s tensor of shape [%lld] from "
                       "the same context, got %s %s", call,
                       kiln_dtype_name(dtype), (long long)oc,
                       kiln_dtype_name(bias->dtype),
                       kiln__shape_string(bias->ndim, bias->shape, a,
                                          sizeof a));
}

/* y + bias[oc] broadcast over N, H, W by a kernel of its own (the
 * transposed convolution, whose output is gathered by COL2IM after its
 * GEMM); consumes y. */
static kiln_tensor *add_bias(kiln_context *ctx, const char *call,
                             kiln_tensor *y, kiln_tensor *bias)
{
    if (!bias || !y)
        return y;
    if (check_bias(ctx, call, bias, y->shape[1], y->dtype) != KILN_OK) {
        kiln_tensor_free(y);
        return NULL;
    }
    kiln_tensor *b = kiln_reshape(bias, 3, (int64_t[]){bias->shape[0], 1, 1});
    kiln_tensor *out = b ? kiln_add(y, b) : NULL;
    kiln_tensor_free(b);
    kiln_tensor_free(y);
    return out;
}

kiln_tensor *kiln__conv2d_act(kiln_tensor *x, kiln_tensor *w,
                              kiln_tensor *bias, const kiln_conv2d_params *p,
                              int act)
{
    const char *call = "kiln_conv2d";
    kiln_tensor *args[2] = {x, w};
    kiln_context *ctx = kiln__args(call, 2, args);
    conv_geom g;
    if (!ctx || check_pair(ctx, call, x, w) != KILN_OK ||
        conv_geometry(ctx, call, p, x->shape, w->shape, &g) != KILN_OK ||
        check_bias(ctx, call, bias, g.oc, x->dtype) != KILN_OK)
        return NULL;
    if (!kiln__epilogue_act_ok(act))
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: activation %d cannot be fused (ReLU, "
                                "sigmoid or tanh)", call, act);
    int64_t ys[4] = {g.n, g.oc, g.oh, g.ow};
    kiln_tensor *y = kiln__tensor_alloc(ctx, call, x->dtype, 4, ys);
    kiln_tensor *wc = y ? dense(w) : NULL;
    if (!wc || (kiln_tensor_numel(y) > 0 &&
                forward_into(ctx, call, &g, x, wc, bias, act, y) != KILN_OK)) {
        kiln_tensor_free(y);
        y = NULL;
    }
    if (wc)
        drop(wc, w);
    return y;
}

kiln_tensor *kiln_conv2d(kiln_tensor *x, kiln_tensor *w, kiln_tensor *bias,
                         const kiln_conv2d_params *p)
{
    return kiln__conv2d_act(x, w, bias, p, -1);
}

/* dx [N, C, H, W] of a convolution with geometry @g (shared by
 * conv2d_backward_data and conv_transpose2d). */
static kiln_status data_grad_into(kiln_context *ctx, const char *call,
                                  const conv_geom *g, kiln_tensor *dy,
                                  kiln_tensor *w, kiln_tensor *dx)
{
    int64_t P = g->oh * g->ow, ocg = g->oc / g->groups;
    int64_t cg = g->c / g->groups, cgk = cg * g->kh * g->kw, chunk;
    kiln_status s = KILN_OK;
    if (is_pointwise(g)) {
        for (int64_t gi = 0; gi < g->groups && s == KILN_OK; gi++) {
            kiln_matrix_view a = {w, gi * ocg * cgk, 1, cgk, 0};
            kiln_matrix_view b = {dy, gi * ocg * P, P, 1, g->oc * P};
            kiln_matrix_view c = {dx, gi * cg * P, P, 1, g->c * P};
            s = kiln__gemm_views(ctx, call, cg, P, ocg, g->n, &a, &b, &c, 1,
                                 0, NULL);
        }
        return s;
    }
    kiln_tensor *dcol = col_alloc(ctx, call, dy->dtype, g, &chunk);
    if (!dcol)
        return ctx->status;
    for (int64_t n0 = 0; n0 < g->n && s == KILN_OK; n0 += chunk) {
        int64_t nc = chunk_len(g, n0, chunk);
        for (int64_t gi = 0; gi < g->groups && s == KILN_OK; gi++) {
            kiln_matrix_view a = {w, gi * ocg * cgk, 1, cgk, 0};
            kiln_matrix_view b = {dy, n0 * g->oc * P + gi * ocg * P, P, 1,
                                  g->oc * P};
            kiln_matrix_view c = {dcol, gi * cgk * nc * P, nc * P, 1, P};
            s = kiln__gemm_views(ctx, call, cgk, P, ocg, nc, &a, &b, &c, 1,
                                 0, NULL);
        }
        if (s == KILN_OK)
            s = run_im2col(ctx, call, KILN_K_COL2IM, g, dx, dx->stride, n0,
                           nc, dcol);
    }
    kiln_tensor_free(dcol);
    return s;
}

/* New dx for dy and w; @xs is the input shape.  @transposed: dy may be
 * smaller than the convolution's output (an output_padding of at least the
 * stride, allowed when below the dilation, adds rows that no output
 * reaches); only its outputs contribute, as in PyTorch. */
static kiln_tensor *data_grad(kiln_context *ctx, const char *call,
                              kiln_tensor *dy, kiln_tensor *w,
                              const int64_t *xs, const kiln_conv2d_params *p,
                              int transposed)
{
    conv_geom g;
    if (check_pair(ctx, call, dy, w) != KILN_OK)
        return NULL;
    if (!xs)
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: x_shape is NULL", call);
    if (conv_geometry(ctx, call, p, xs, w->shape, &g) != KILN_OK)
        return NULL;
    if (transposed && g.oh >= dy->shape[2] && g.ow >= dy->shape[3]) {
        g.oh = dy->shape[2];
        g.ow = dy->shape[3];
    }
    if (check_dy(ctx, call, dy, &g) != KILN_OK)
        return NULL;
    kiln_tensor *dx = kiln__tensor_alloc(ctx, call, dy->dtype, 4, xs);
    if (!dx || kiln_tensor_numel(dx) == 0)
        return dx;
    kiln_tensor *dyc = dense(dy), *wc = dyc ? dense(w) : NULL;
    kiln_status s = KILN_ERROR_OUT_OF_HOST_MEMORY;
    if (wc && g.oc * g.oh * g.ow == 0)
        s = kiln_fill(dx, 0); /* nothing flows back */
    else if (wc)
        s = data_grad_into(ctx, call, &g, dyc, wc, dx);
    if (dyc)
        drop(dyc, dy);
    if (wc)
        drop(wc, w);
    if (s != KILN_OK) {
        kiln_tensor_free(dx);
        return NULL;
    }
    return dx;
}

kiln_tensor *kiln_conv2d_backward_data(kiln_tensor *dy, kiln_tensor *w,
                                       const int64_t *x_shape,
                                       const kiln_conv2d_params *p)
{
    const char *call = "kiln_conv2d_backward_data";
    kiln_tensor *args[2] = {dy, w};
    kiln_context *ctx = kiln__args(call, 2, args);
    return ctx ? data_grad(ctx, call, dy, w, x_shape, p, 0) : NULL;
}

/* dw = sum over images of dyT[g] @ col[g]^T, chunk by chunk (beta = 1
 * after the first). */
static kiln_status weight_grad_into(kiln_context *ctx, const char *call,
                                    const conv_geom *g, kiln_tensor *dyt,
                                    kiln_tensor *x, kiln_tensor *dw)
{
    int64_t P = g->oh * g->ow, ocg = g->oc / g->groups;
    int64_t cgk = g->c / g->groups * g->kh * g->kw, chunk;
    kiln_status s = KILN_OK;
    kiln_tensor *col = col_alloc(ctx, call, x->dtype, g, &chunk);
    if (!col)
        return ctx->status;
    for (int64_t n0 = 0; n0 < g->n && s == KILN_OK; n0 += chunk) {
        int64_t nc = chunk_len(g, n0, chunk);
        s = run_im2col(ctx, call, KILN_K_IM2COL, g, x, x->stride, n0, nc, col);
        for (int64_t gi = 0; gi < g->groups && s == KILN_OK; gi++) {
            kiln_matrix_view a = {dyt, gi * ocg * g->n * P + n0 * P,
                                  g->n * P, 1, 0};
            kiln_matrix_view b = {col, gi * cgk * nc * P, 1, nc * P, 0};
            kiln_matrix_view c = {dw, gi * ocg * cgk, cgk, 1, 0};
            s = kiln__gemm_views(ctx, call, ocg, cgk, nc * P, 1, &a, &b, &c,
                                 1, n0 ? 1 : 0, NULL);
        }
    }
    kiln_tensor_free(col);
    return s;
}

kiln_tensor *kiln_conv2d_backward_weights(kiln_tensor *dy, kiln_tensor *x,
                                          const int64_t *w_shape,
                                          const kiln_conv2d_params *p)
{
    const char *call = "kiln_conv2d_backward_weights";
    kiln_tensor *args[2] = {dy, x};
    kiln_context *ctx = kiln__args(call, 2, args);
    conv_geom g;
    if (!ctx || check_pair(ctx, call, dy, x) != KILN_OK)
        return NULL;
    if (!w_shape)
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: w_shape is NULL", call);
    if (conv_geometry(ctx, call, p, x->shape, w_shape, &g) != KILN_OK ||
        check_dy(ctx, call, dy, &g) != KILN_OK)
        return NULL;
    kiln_tensor *dw = kiln__tensor_alloc(ctx, call, dy->dtype, 4, w_shape);
    if (!dw || kiln_tensor_numel(dw) == 0)
        return dw;
    if (g.n * g.oh * g.ow == 0) { /* an empty batch: zero gradient */
        if (kiln_fill(dw, 0) == KILN_OK)
            return dw;
        kiln_tensor_free(dw);
        return NULL;
    }
    /* dy as [OC, N, P], contiguous, so each group's rows merge N and P. */
    kiln_tensor *perm = kiln_permute(dy, (const int[]){1, 0, 2, 3});
    kiln_tensor *dyt = perm ? kiln_contiguous_copy(perm) : NULL;
    kiln_tensor_free(perm);
    if (!dyt || weight_grad_into(ctx, call, &g, dyt, x, dw) != KILN_OK) {
        kiln_tensor_free(dw);
        dw = NULL;
    }
    kiln_tensor_free(dyt);
    return dw;
}

kiln_tensor *kiln_conv2d_backward_bias(kiln_tensor *dy)
{
    const char *call = "kiln_conv2d_backward_bias";
    kiln_context *ctx = kiln__args(call, 1, &dy);
    if (!ctx)
        return NULL;
    if (dy->ndim != 4 || !kiln__is_float(dy->dtype))
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: dy must be a 4-D f32 or f64 tensor, got "
                                "%d-D %s", call, dy->ndim,
                                kiln_dtype_name(dy->dtype));
    return kiln_sum(dy, 3, (const int[]){0, 2, 3}, 0);
}

/* @t [A, B, L] viewed (or copied) as [A, B, 1, L]. */
static kiln_tensor *as_2d(kiln_tensor *t)
{
    return kiln_reshape(t, 4,
                        (int64_t[]){t->shape[0], t->shape[1], 1, t->shape[2]});
}

kiln_tensor *kiln_conv1d(kiln_tensor *x, kiln_tensor *w, kiln_tensor *bias,
                         const kiln_conv2d_params *p)
{
    const char *call = "kiln_conv1d";
    kiln_tensor *args[2] = {x, w};
    kiln_context *ctx = kiln__args(call, 2, args);
    if (!ctx)
        return NULL;
    if (x->ndim != 3 || w->ndim != 3)
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: x [N, C, L] and w [OC, C/groups, K] must "
                                "be 3-D (got %d-D and %d-D)", call, x->ndim,
                                w->ndim);
    /* Only index 1 of the arrays applies; height is 1 with a 1-tap kernel. */
    kiln_conv2d_params q = p ? *p : (kiln_conv2d_params){0};
    q.stride[0] = q.dilation[0] = 1;
    q.padding[0] = 0;
    kiln_tensor *x4 = as_2d(x), *w4 = x4 ? as_2d(w) : NULL;
    kiln_tensor *y4 = w4 ? kiln_conv2d(x4, w4, bias, &q) : NULL;
    kiln_tensor *y = y4 ? kiln_reshape(y4, 3, (int64_t[]){y4->shape[0],
                                                          y4->shape[1],
                                                          y4->shape[3]})
                        : NULL;
    kiln_tensor_free(x4);
    kiln_tensor_free(w4);
    kiln_tensor_free(y4);
    return y;
}

/* Transposed-convolution output size along one axis, or -1. */
static int64_t transpose_size(int64_t in, int64_t k, int s, int d, int pad,
                              int opad, kiln_padding_mode mode)
{
    s = s ? s : 1;
    d = d ? d : 1;
    if (mode == KILN_PAD_SAME) /* TensorFlow: out = in * stride */
        return opad ? -1 : in * s;
    if (mode == KILN_PAD_VALID)
        pad = 0;
    if (opad < 0 || (opad >= s && opad >= d))
        return -1;
    return (in - 1) * s - 2 * (int64_t)pad + (int64_t)d * (k - 1) + opad + 1;
}

kiln_tensor *kiln_conv_transpose2d(kiln_tensor *x, kiln_tensor *w,
                                   kiln_tensor *bias,
                                   const kiln_conv2d_params *p,
                                   const int *output_padding)
{
    const char *call = "kiln_conv_transpose2d";
    kiln_tensor *args[2] = {x, w};
    kiln_context *ctx = kiln__args(call, 2, args);
    if (!ctx || check_pair(ctx, call, x, w) != KILN_OK)
        return NULL;
    kiln_conv2d_params q = p ? *p : (kiln_conv2d_params){0};
    int op[2] = {output_padding ? output_padding[0] : 0,
                 output_padding ? output_padding[1] : 0};
    int64_t xs[4] = {x->shape[0], w->shape[1] * (q.groups ? q.groups : 1),
                     transpose_size(x->shape[2], w->shape[2], q.stride[0],
                                    q.dilation[0], q.padding[0], op[0],
                                    q.mode),
                     transpose_size(x->shape[3], w->shape[3], q.stride[1],
                                    q.dilation[1], q.padding[1], op[1],
                                    q.mode)};
    if (xs[2] < 1 || xs[3] < 1)
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: no output size for input %lldx%lld with "
                                "this kernel, stride, padding and "
                                "output_padding (%d, %d; each must be below "
                                "the stride or the dilation, and 0 with SAME)",
                                call, (long long)x->shape[2],
                                (long long)x->shape[3], op[0], op[1]);
    /* The forward pass of a transposed convolution is the data gradient
     * of the convolution whose output has x's shape. */
    kiln_tensor *y = data_grad(ctx, call, x, w, xs, &q, 1);
    return add_bias(ctx, call, y, bias);
}
