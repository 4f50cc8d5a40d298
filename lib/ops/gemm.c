/*
 * gemm.c - matrix products: kiln_matmul (NumPy rules) and kiln_gemm.
 *
 * Transposes are strides, never copies.  Batch dimensions must collapse to
 * one stride per operand (true for contiguous tensors and for broadcast
 * ones); a batch that does not (a partially broadcast or permuted batch)
 * is made contiguous first.
 */
#include <string.h>

#include "ops/ops.h"

/* Tile configuration for one device: a small table, chosen by the limits
 * every device reports, never by assuming warp 32 or 48 KiB. */
static void gemm_tiles(const kiln_context *ctx, kiln_dispatch *d)
{
    uint32_t maxwg = ctx->device.max_workgroup_size;
    uint32_t lx = 16, ly = 16, rm = 4, rn = 4, tk = 16;
    if (maxwg && maxwg < 256) {
        lx = ly = 8;
    }
    size_t es = kiln_dtype_size(d->dtype);
    size_t need = (size_t)(ly * rm + lx * rn) * tk * es;
    if (ctx->device.local_memory && need > ctx->device.local_memory)
        tk = 8;
    d->local[0] = lx;
    d->local[1] = ly;
    d->local[2] = 1;
    d->consts[0] = (int32_t)rm;
    d->consts[1] = (int32_t)rn;
    d->consts[2] = (int32_t)tk;
}

/* One stride for @nb batch dims of shape @shape and strides @stride, or -1
 * when they do not collapse. */
static int64_t batch_stride(int nb, const int64_t *shape, const int64_t *stride)
{
    int64_t s = -1, inner_extent = 0;
    for (int i = nb - 1; i >= 0; i--) {
        if (shape[i] == 1)
            continue;
        if (s < 0) {
            s = stride[i];
            inner_extent = stride[i] * shape[i];
        } else if (stride[i] == inner_extent) {
            inner_extent = stride[i] * shape[i];
        } else {
            return -1;
        }
    }
    return s < 0 ? 0 : s;
}

/* @t broadcast to batch shape + its last two dims; returns a tensor whose
 * batch collapses (a view, or a contiguous copy) and its batch stride. */
static kiln_tensor *batched(kiln_tensor *t, int nb, const int64_t *bshape,
                            int64_t *bstride)
{
    int64_t shape[KILN_MAX_DIMS];
    memcpy(shape, bshape, sizeof(int64_t) * (size_t)nb);
    shape[nb] = t->shape[t->ndim - 2];
    shape[nb + 1] = t->shape[t->ndim - 1];
    kiln_tensor *v = kiln_broadcast_to(t, nb + 2, shape);
    if (!v)
        return NULL;
    *bstride = batch_stride(nb, v->shape, v->stride);
    if (*bstride >= 0)
        return v;
    kiln_tensor *c = kiln_contiguous_copy(v);
    kiln_tensor_free(v);
    if (c)
        *bstride = c->shape[nb] * c->shape[nb + 1];
    return c;
}

static const kiln_gemm_epilogue no_epilogue = {NULL, 0, 0, 0, -1};

/* Binding 3 and the epilogue fields (kernels.h; binding 3 repeats @a
 * without bias, so every GEMM binds the same four slots). */
static void bind_epilogue(kiln_dispatch *d, kiln_gemm_params *p,
                          const kiln_gemm_epilogue *e, const kiln_tensor *a)
{
    if (!e)
        e = &no_epilogue;
    p->epilogue = (e->bias ? KILN_GEMM_BIAS : 0) |
                  (e->act >= 0 ? (e->act + 1) << KILN_GEMM_ACT_SHIFT : 0);
    if (e->bias) {
        p->off_bias = (int32_t)(kiln__block_offset(e->bias) + e->off);
        p->bias_sm = (int32_t)e->si;
        p->bias_sn = (int32_t)e->sj;
    }
    kiln__bind(d, e->bias ? e->bias : a, KILN_ACCESS_READ);
}

static kiln_status run_gemm(kiln_context *ctx, const char *call,
                            kiln_tensor *a, int ta, kiln_tensor *b, int tb,
                            kiln_tensor *c, int64_t sa, int64_t sb,
                            int64_t batch, double alpha, double beta,
                            const kiln_gemm_epilogue *e)
{
    int an = a->ndim, bn = b->ndim, cn = c->ndim;
    int64_t m = c->shape[cn - 2], n = c->shape[cn - 1];
    int64_t k = ta ? a->shape[an - 2] : a->shape[an - 1];
    if (m == 0 || n == 0 || batch == 0)
        return KILN_OK;
    kiln_dispatch d;
    kiln__dispatch_init(ctx, &d, KILN_K_GEMM, c->dtype, 1);
    gemm_tiles(ctx, &d);
    kiln_gemm_params *p = (kiln_gemm_params *)d.params;
    p->m = (int32_t)m;
    p->n = (int32_t)n;
    p->k = (int32_t)k;
    p->batch = (int32_t)batch;
    p->off_a = (int32_t)kiln__block_offset(a);
    p->off_b = (int32_t)kiln__block_offset(b);
    p->off_c = (int32_t)kiln__block_offset(c);
    p->a_sm = (int32_t)a->stride[an - (ta ? 1 : 2)];
    p->a_sk = (int32_t)a->stride[an - (ta ? 2 : 1)];
    p->a_sb = (int32_t)sa;
    p->b_sk = (int32_t)b->stride[bn - (tb ? 1 : 2)];
    p->b_sn = (int32_t)b->stride[bn - (tb ? 2 : 1)];
    p->b_sb = (int32_t)sb;
    p->c_sm = (int32_t)n;
    p->c_sb = (int32_t)(m * n);
    kiln__scalar_bits(c->dtype, alpha, &p->alpha_lo, &p->alpha_hi);
    kiln__scalar_bits(c->dtype, beta, &p->beta_lo, &p->beta_hi);
    uint32_t tile_m = d.local[1] * (uint32_t)d.consts[0];
    uint32_t tile_n = d.local[0] * (uint32_t)d.consts[1];
    d.groups[0] = (uint32_t)((n + tile_n - 1) / tile_n);
    d.groups[1] = (uint32_t)((m + tile_m - 1) / tile_m);
    d.groups[2] = (uint32_t)(batch < 65535 ? batch : 65535);
    if (d.groups[0] > 65535 || d.groups[1] > 65535)
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: %lld x %lld output is too large for one "
                           "dispatch", call, (long long)m, (long long)n);
    kiln__bind(&d, a, KILN_ACCESS_READ);
    kiln__bind(&d, b, KILN_ACCESS_READ);
    kiln__bind(&d, c, beta != 0 ? KILN_ACCESS_READ_WRITE : KILN_ACCESS_WRITE);
    bind_epilogue(&d, p, e, a);
    return kiln__launch(ctx, call, &d, -1);
}

kiln_status kiln__gemm_views(kiln_context *ctx, const char *call, int64_t m,
                             int64_t n, int64_t k, int64_t batch,
                             const kiln_matrix_view *a,
                             const kiln_matrix_view *b,
                             const kiln_matrix_view *c, double alpha,
                             double beta, const kiln_gemm_epilogue *e)
{
    if (m == 0 || n == 0 || batch == 0)
        return KILN_OK;
    kiln_dispatch d;
    kiln__dispatch_init(ctx, &d, KILN_K_GEMM, c->t->dtype, 1);
    gemm_tiles(ctx, &d);
    kiln_gemm_params *p = (kiln_gemm_params *)d.params;
    *p = (kiln_gemm_params){
        .m = (int32_t)m, .n = (int32_t)n, .k = (int32_t)k,
        .batch = (int32_t)batch,
        .off_a = (int32_t)(kiln__block_offset(a->t) + a->off),
        .off_b = (int32_t)(kiln__block_offset(b->t) + b->off),
        .off_c = (int32_t)(kiln__block_offset(c->t) + c->off),
        .a_sm = (int32_t)a->si, .a_sk = (int32_t)a->sj,
        .a_sb = (int32_t)a->sb, .b_sk = (int32_t)b->si,
        .b_sn = (int32_t)b->sj, .b_sb = (int32_t)b->sb,
        .c_sm = (int32_t)c->si, .c_sb = (int32_t)c->sb};
    kiln__scalar_bits(c->t->dtype, alpha, &p->alpha_lo, &p->alpha_hi);
    kiln__scalar_bits(c->t->dtype, beta, &p->beta_lo, &p->beta_hi);
    uint32_t tile_m = d.local[1] * (uint32_t)d.consts[0];
    uint32_t tile_n = d.local[0] * (uint32_t)d.consts[1];
    d.groups[0] = (uint32_t)((n + tile_n - 1) / tile_n);
    d.groups[1] = (uint32_t)((m + tile_m - 1) / tile_m);
    d.groups[2] = (uint32_t)(batch < 65535 ? batch : 65535);
    /* Tiles are looped grid-stride, so a capped grid still covers C. */
    if (d.groups[0] > 65535)
        d.groups[0] = 65535;
    if (d.groups[1] > 65535)
        d.groups[1] = 65535;
    kiln__bind(&d, a->t, KILN_ACCESS_READ);
    kiln__bind(&d, b->t, KILN_ACCESS_READ);
    kiln__bind(&d, c->t,
               beta != 0 ? KILN_ACCESS_READ_WRITE : KILN_ACCESS_WRITE);
    bind_epilogue(&d, p, e, a->t);
    return kiln__launch(ctx, call, &d, -1);
}

/* The shared body of kiln_matmul and kiln_gemm on >= 2-D operands. */
static kiln_tensor *product(const char *call, kiln_context *ctx,
                            kiln_tensor *a, int ta, kiln_tensor *b, int tb,
                            double alpha, double beta, kiln_tensor *c,
                            const kiln_gemm_epilogue *e)
{
    char sa_buf[160], sb_buf[160];
    if (a->dtype != b->dtype || !kiln__is_float(a->dtype))
        return kiln__error_null(ctx, KILN_ERROR_DTYPE,
                                "%s: operands are %s and %s (both f32 or both "
                                "f64 needed)", call, kiln_dtype_name(a->dtype),
                                kiln_dtype_name(b->dtype));
    int64_t m = a->shape[a->ndim - (ta ? 1 : 2)];
    int64_t ka = a->shape[a->ndim - (ta ? 2 : 1)];
    int64_t kb = b->shape[b->ndim - (tb ? 1 : 2)];
    int64_t n = b->shape[b->ndim - (tb ? 2 : 1)];
    if (ka != kb)
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: inner dimensions differ: %s%s x %s%s",
                                call,
                                kiln__shape_string(a->ndim, a->shape, sa_buf,
                                                   sizeof sa_buf),
                                ta ? "^T" : "",
                                kiln__shape_string(b->ndim, b->shape, sb_buf,
                                                   sizeof sb_buf),
                                tb ? "^T" : "");
    /* Batch: broadcast the leading dimensions. */
    kiln_tensor ha = *a, hb = *b; /* headers with the matrix dims dropped */
    ha.ndim -= 2;
    hb.ndim -= 2;
    kiln_tensor *heads[2] = {&ha, &hb};
    int64_t bshape[KILN_MAX_DIMS];
    int nb = kiln__broadcast_shape(ctx, call, 2, heads, bshape);
    if (nb < 0)
        return NULL;
    int64_t batch = kiln__numel(nb, bshape);
    int64_t cshape[KILN_MAX_DIMS];
    memcpy(cshape, bshape, sizeof(int64_t) * (size_t)nb);
    cshape[nb] = m;
    cshape[nb + 1] = n;
    kiln_tensor *out = c;
    if (c) {
        int ok = c->ndim == nb + 2 && c->dtype == a->dtype &&
                 kiln_tensor_is_contiguous(c);
        for (int i = 0; ok && i < nb + 2; i++)
            ok = c->shape[i] == cshape[i];
        if (!ok)
            return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                    "%s: C must be a contiguous %s tensor of "
                                    "shape %s", call, kiln_dtype_name(a->dtype),
                                    kiln__shape_string(nb + 2, cshape, sa_buf,
                                                       sizeof sa_buf));
    } else {
        out = kiln__tensor_alloc(ctx, call, a->dtype, nb + 2, cshape);
        if (!out)
            return NULL;
        beta = 0;
    }
    int64_t sa = 0, sb = 0;
    kiln_tensor *va = batched(a, nb, bshape, &sa);
    kiln_tensor *vb = va ? batched(b, nb, bshape, &sb) : NULL;
    kiln_status s = KILN_ERROR_OUT_OF_HOST_MEMORY;
    if (va && vb)
        s = run_gemm(ctx, call, va, ta, vb, tb, out, sa, sb, batch, alpha,
                     beta, e);
    kiln_tensor_free(va);
    kiln_tensor_free(vb);
    if (s != KILN_OK && out != c) {
        kiln_tensor_free(out);
        return NULL;
    }
    return s == KILN_OK ? out : NULL;
}

kiln_tensor *kiln_gemm(kiln_tensor *a, int transpose_a, kiln_tensor *b,
                       int transpose_b, double alpha, double beta,
                       kiln_tensor *c)
{
    const char *call = "kiln_gemm";
    kiln_tensor *args[2] = {a, b};
    kiln_context *ctx = kiln__args(call, 2, args);
    if (!ctx)
        return NULL;
    if (a->ndim < 2 || b->ndim < 2)
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: operands need at least 2 dimensions "
                                "(got %d and %d)", call, a->ndim, b->ndim);
    if (c && c->ctx != ctx)
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: C comes from another context", call);
    return product(call, ctx, a, transpose_a, b, transpose_b, alpha, beta, c,
                   &no_epilogue);
}

kiln_tensor *kiln__gemm_bias_act(kiln_context *ctx, const char *call,
                                 kiln_tensor *a, int ta, kiln_tensor *b,
                                 int tb, kiln_tensor *bias, int act)
{
    if (a->ndim < 2 || b->ndim < 2 || bias->dtype != a->dtype ||
        !kiln__epilogue_act_ok(act))
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: no GEMM epilogue for these operands",
                                call);
    int64_t n = b->shape[b->ndim - (tb ? 2 : 1)];
    int ok = bias->shape[bias->ndim - 1] == n &&
             (bias->ndim == 1 || (bias->ndim == 2 && bias->shape[0] == 1));
    if (!ok)
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: a GEMM bias must be [N] or [1, N]", call);
    /* Per column: the same bias for every row and batch. */
    kiln_gemm_epilogue e = {bias, 0, 0, bias->stride[bias->ndim - 1], act};
    return product(call, ctx, a, ta, b, tb, 1.0, 0.0, NULL, &e);
}

kiln_tensor *kiln_matmul(kiln_tensor *a, kiln_tensor *b)
{
    const char *call = "kiln_matmul";
    kiln_tensor *args[2] = {a, b};
    kiln_context *ctx = kiln__args(call, 2, args);
    if (!ctx)
        return NULL;
    if (a->ndim == 0 || b->ndim == 0)
        return kiln__error_null(ctx, KILN_ERROR_SHAPE,
                                "%s: operands must have at least 1 dimension",
                                call);
    /* NumPy: a 1-D left operand is a row, a 1-D right operand a column;
     * the promoted dimension is removed from the result. */
    kiln_tensor *pa = a, *pb = b;
    if (a->ndim == 1)
        pa = kiln_reshape(a, 2, (int64_t[]){1, a->shape[0]});
    if (b->ndim == 1)
        pb = kiln_reshape(b, 2, (int64_t[]){b->shape[0], 1});
    kiln_tensor *r = NULL;
    if (pa && pb)
        r = product(call, ctx, pa, 0, pb, 0, 1.0, 0.0, NULL, &no_epilogue);
    if (pa != a)
        kiln_tensor_free(pa);
    if (pb != b)
        kiln_tensor_free(pb);
    if (r && (a->ndim == 1 || b->ndim == 1)) {
        int64_t shape[KILN_MAX_DIMS];
        int nd = 0;
        for (int i = 0; i < r->ndim - 2; i++)
            shape[nd++] = r->shape[i];
        if (a->ndim != 1)
            shape[nd++] = r->shape[r->ndim - 2];
        if (b->ndim != 1)
            shape[nd++] = r->shape[r->ndim - 1];
        kiln_tensor *v = kiln_reshape(r, nd, shape);
        kiln_tensor_free(r);
        r = v;
    }
    return r;
}
