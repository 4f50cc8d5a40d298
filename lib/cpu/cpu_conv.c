/*
 * cpu_conv.c - reference semantics of im2col, col2im, pooling and its
 * backward pass (parameter blocks in queue/kernels_conv.h).  Loops written
 * to mirror the definitions, not for speed: this is the oracle.  Float
 * values are accumulated in double and rounded once on store.
 */
#include <math.h>

#include "cpu/cpu_kernels_internal.h"
#include "queue/kernels_conv.h"

void kiln_cpu_im2col(const kiln_dispatch *d, void *const *base)
{
    const kiln_im2col_params *p = (const void *)d->params;
    int64_t np = (int64_t)p->out_h * p->out_w;
    for (int64_t i = 0; i < p->n; i++) {
        int64_t pix = i % np, n = (i / np) % p->batch;
        int64_t row = i / (np * p->batch);
        int64_t kw = row % p->kernel_w, kh = (row / p->kernel_w) % p->kernel_h;
        int64_t c = row / ((int64_t)p->kernel_w * p->kernel_h);
        int64_t h = (pix / p->out_w) * p->stride_h - p->pad_top +
                    kh * p->dil_h;
        int64_t w = (pix % p->out_w) * p->stride_w - p->pad_left +
                    kw * p->dil_w;
        double v = 0;
        if (h >= 0 && h < p->height && w >= 0 && w < p->width)
            v = kiln_cpu_load(base[0], d->dtype,
                              p->off_x + n * p->x_stride[0] +
                                  c * p->x_stride[1] + h * p->x_stride[2] +
                                  w * p->x_stride[3]);
        kiln_cpu_store(base[1], d->dtype, p->off_col + i, v);
    }
}

/* The output index o along one axis whose tap @k reaches input @x, or -1:
 * o*stride - pad + k*dil == x with 0 <= o < out. */
static int64_t tap_source(int64_t x, int64_t k, int64_t stride, int64_t pad,
                          int64_t dil, int64_t out)
{
    int64_t t = x + pad - k * dil;
    if (t < 0 || t % stride != 0 || t / stride >= out)
        return -1;
    return t / stride;
}

void kiln_cpu_col2im(const kiln_dispatch *d, void *const *base)
{
    const kiln_im2col_params *p = (const void *)d->params;
    int64_t np = (int64_t)p->out_h * p->out_w;
    int64_t hw = (int64_t)p->height * p->width;
    for (int64_t i = 0; i < p->n; i++) {
        int64_t w = i % p->width, h = (i / p->width) % p->height;
        int64_t c = (i / hw) % p->channels, n = i / (hw * p->channels);
        double acc = 0;
        for (int64_t kh = 0; kh < p->kernel_h; kh++) {
            int64_t oh = tap_source(h, kh, p->stride_h, p->pad_top, p->dil_h,
                                    p->out_h);
            if (oh < 0)
                continue;
            for (int64_t kw = 0; kw < p->kernel_w; kw++) {
                int64_t ow = tap_source(w, kw, p->stride_w, p->pad_left,
                                        p->dil_w, p->out_w);
                if (ow < 0)
                    continue;
                int64_t row = (c * p->kernel_h + kh) * p->kernel_w + kw;
                acc += kiln_cpu_load(base[0], d->dtype,
                                     p->off_col + (row * p->batch + n) * np +
                                         oh * p->out_w + ow);
            }
        }
        kiln_cpu_store(base[1], d->dtype,
                       p->off_x + n * p->x_stride[0] + c * p->x_stride[1] +
                           h * p->x_stride[2] + w * p->x_stride[3],
                       acc);
    }
}

/* The window of output @o along one axis, clipped to the image: [*lo, *hi).
 * Padding is never read, so it cannot win a maximum. */
static void clip(int64_t o, int64_t stride, int64_t pad, int64_t k,
                 int64_t size, int64_t *lo, int64_t *hi)
{
    int64_t start = o * stride - pad;
    *lo = start < 0 ? 0 : start;
    *hi = start + k > size ? size : start + k;
}

static double pool_divisor(const kiln_pool_params *p, int64_t oh, int64_t ow)
{
    if (p->count_include_pad)
        return (double)p->kernel_h * p->kernel_w;
    int64_t h0, h1, w0, w1;
    clip(oh, p->stride_h, p->pad_top, p->kernel_h, p->height, &h0, &h1);
    clip(ow, p->stride_w, p->pad_left, p->kernel_w, p->width, &w0, &w1);
    return (double)((h1 - h0) * (w1 - w0));
}

void kiln_cpu_pool(const kiln_dispatch *d, void *const *base)
{
    const kiln_pool_params *p = (const void *)d->params;
    int64_t np = (int64_t)p->out_h * p->out_w;
    for (int64_t o = 0; o < p->n; o++) {
        int64_t oh = (o % np) / p->out_w, ow = o % p->out_w;
        int64_t c = (o / np) % p->channels, n = o / (np * p->channels);
        int64_t h0, h1, w0, w1;
        clip(oh, p->stride_h, p->pad_top, p->kernel_h, p->height, &h0, &h1);
        clip(ow, p->stride_w, p->pad_left, p->kernel_w, p->width, &w0, &w1);
        int64_t plane = p->off_in + n * p->in_stride[0] + c * p->in_stride[1];
        double acc = 0, best = 0;
        int64_t best_at = -1;
        for (int64_t h = h0; h < h1; h++) {
            for (int64_t w = w0; w < w1; w++) {
                double v = kiln_cpu_load(base[0], d->dtype,
                                         plane + h * p->in_stride[2] +
                                             w * p->in_stride[3]);
                acc += v;
                /* The first NaN wins, as in kiln_argmax. */
                if (best_at < 0 ||
                    (!isnan(best) && (v > best || isnan(v)))) {
                    best = v;
                    best_at = h * p->width + w;
                }
            }
        }
        if (p->op == KILN_KPOOL_MAX) {
            kiln_cpu_store(base[1], d->dtype, p->off_out + o, best);
            ((int32_t *)base[2])[p->off_idx + o] = (int32_t)best_at;
        } else {
            kiln_cpu_store(base[1], d->dtype, p->off_out + o,
                           acc / pool_divisor(p, oh, ow));
        }
    }
}

/* The outputs whose windows contain input @x along one axis: [*lo, *hi). */
static void covering(int64_t x, int64_t stride, int64_t pad, int64_t k,
                     int64_t out, int64_t *lo, int64_t *hi)
{
    int64_t t = x + pad; /* o*stride <= t < o*stride + k */
    *lo = t - k + 1 <= 0 ? 0 : (t - k + 1 + stride - 1) / stride;
    *hi = t / stride + 1;
    if (*hi > out)
        *hi = out;
}

static void pool_backward_avg(const kiln_dispatch *d, void *const *base)
{
    const kiln_pool_params *p = (const void *)d->params;
    int64_t hw = (int64_t)p->height * p->width;
    for (int64_t i = 0; i < p->n; i++) {
        int64_t w = i % p->width, h = (i / p->width) % p->height;
        int64_t c = (i / hw) % p->channels, n = i / (hw * p->channels);
        int64_t oh0, oh1, ow0, ow1;
        covering(h, p->stride_h, p->pad_top, p->kernel_h, p->out_h, &oh0,
                 &oh1);
        covering(w, p->stride_w, p->pad_left, p->kernel_w, p->out_w, &ow0,
                 &ow1);
        int64_t plane = p->off_in + n * p->in_stride[0] + c * p->in_stride[1];
        double acc = 0;
        for (int64_t oh = oh0; oh < oh1; oh++)
            for (int64_t ow = ow0; ow < ow1; ow++)
                acc += kiln_cpu_load(base[0], d->dtype,
                                     plane + oh * p->in_stride[2] +
                                         ow * p->in_stride[3]) /
                       pool_divisor(p, oh, ow);
        kiln_cpu_store(base[1], d->dtype, p->off_out + i, acc);
    }
}

static void pool_backward_max(const kiln_dispatch *d, void *const *base)
{
    const kiln_pool_params *p = (const void *)d->params;
    int64_t hw = (int64_t)p->height * p->width;
    int64_t np = (int64_t)p->out_h * p->out_w;
    for (int64_t pl = 0; pl < p->n; pl++) {
        int64_t c = pl % p->channels, n = pl / p->channels;
        int64_t dx0 = p->off_out + pl * hw;
        int64_t dy0 = p->off_in + n * p->in_stride[0] + c * p->in_stride[1];
        for (int64_t i = 0; i < hw; i++)
            kiln_cpu_store(base[1], d->dtype, dx0 + i, 0);
        for (int64_t o = 0; o < np; o++) {
            int32_t at = ((const int32_t *)base[2])[p->off_idx + pl * np + o];
            if (at < 0 || at >= hw)
                continue;
            double g = kiln_cpu_load(base[0], d->dtype,
                                     dy0 + (o / p->out_w) * p->in_stride[2] +
                                         (o % p->out_w) * p->in_stride[3]);
            /* Rounded to T after each add, as a device accumulating in T. */
            kiln_cpu_store(base[1], d->dtype, dx0 + at,
                           kiln_cpu_load(base[1], d->dtype, dx0 + at) + g);
        }
    }
}

void kiln_cpu_pool_backward(const kiln_dispatch *d, void *const *base)
{
    const kiln_pool_params *p = (const void *)d->params;
    if (p->op == KILN_KPOOL_MAX)
        pool_backward_max(d, base);
    else
        pool_backward_avg(d, base);
}
