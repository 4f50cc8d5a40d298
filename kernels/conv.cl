/*
 * conv.cl - im2col, col2im, pooling and pooling backward (float T only).
 *
 * Semantics are those of lib/cpu/cpu_conv.c; parameter blocks in
 * lib/queue/kernels_conv.h:
 *   im2col: col[(c*KH + kh)*KW + kw][n][oh*OW + ow] = x[n, c, oh*sh - pt +
 *           kh*dh, ow*sw - pl + kw*dw] (0 outside the image), x strided;
 *   col2im: the adjoint as a gather: each image element sums, in ascending
 *           (kh, kw) order, the column entries whose tap lands on it (no
 *           atomics, so the result does not depend on scheduling);
 *   pool:   max (first maximum, padding never wins, first NaN wins; i32
 *           index h*W + w) or average (divisor: full window with
 *           count_include_pad, else the in-image count);
 *   pool_backward: average gathers dy/divisor over the covering windows;
 *           max runs one work-item per plane, adding dy at idx in output
 *           order (the op has no window geometry to gather with).
 *
 * Layout: one work-item per output element (per plane for max backward),
 * grid-stride over n, any grid.  Accumulation in T.
 * Tunables: the workgroup size only; C0..C3 unused.  No __local memory.
 */

typedef struct {
    int n, off_x, off_col;
    int batch, channels, height, width;
    int out_h, out_w;
    int kernel_h, kernel_w;
    int stride_h, stride_w;
    int pad_top, pad_left;
    int dil_h, dil_w;
    int x_stride[4];
    uint pad[11];
} im2col_params;

typedef struct {
    int n, op, count_include_pad;
    int off_in, off_out, off_idx;
    int channels, height, width;
    int out_h, out_w;
    int kernel_h, kernel_w;
    int stride_h, stride_w;
    int pad_top, pad_left;
    int in_stride[4];
    uint pad[11];
} pool_params;

#define POOL_MAX 0

KILN_KERNEL void kiln_im2col(__global const T *x, __global T *col,
                             const im2col_params P)
{
    im2col_params p = P;
    int np = p.out_h * p.out_w;
    for (uint i = kiln_global_index(); i < (uint)p.n;
         i += kiln_global_count()) {
        int pix = (int)(i % (uint)np);
        int rest = (int)(i / (uint)np);
        int n = rest % p.batch, row = rest / p.batch;
        int kw = row % p.kernel_w, kh = (row / p.kernel_w) % p.kernel_h;
        int c = row / (p.kernel_w * p.kernel_h);
        int h = (pix / p.out_w) * p.stride_h - p.pad_top + kh * p.dil_h;
        int w = (pix % p.out_w) * p.stride_w - p.pad_left + kw * p.dil_w;
        T v = (T)0;
        if (h >= 0 && h < p.height && w >= 0 && w < p.width)
            v = x[p.off_x + n * p.x_stride[0] + c * p.x_stride[1] +
                  h * p.x_stride[2] + w * p.x_stride[3]];
        col[p.off_col + (int)i] = v;
    }
}

/* The output index along one axis whose tap k reaches input x, or -1. */
int tap_source(int x, int k, int stride, int pad, int dil, int out)
{
    int t = x + pad - k * dil;
    if (t < 0 || t % stride != 0 || t / stride >= out)
        return -1;
    return t / stride;
}

KILN_KERNEL void kiln_col2im(__global const T *col, __global T *x,
                             const im2col_params P)
{
    im2col_params p = P;
    int np = p.out_h * p.out_w;
    for (uint i = kiln_global_index(); i < (uint)p.n;
         i += kiln_global_count()) {
        int w = (int)(i % (uint)p.width);
        int rest = (int)(i / (uint)p.width);
        int h = rest % p.height;
        rest /= p.height;
        int c = rest % p.channels, n = rest / p.channels;
        T acc = (T)0;
        for (int kh = 0; kh < p.kernel_h; kh++) {
            int oh = tap_source(h, kh, p.stride_h, p.pad_top, p.dil_h,
                                p.out_h);
            if (oh < 0)
                continue;
            for (int kw = 0; kw < p.kernel_w; kw++) {
                int ow = tap_source(w, kw, p.stride_w, p.pad_left, p.dil_w,
                                    p.out_w);
                if (ow < 0)
                    continue;
                int row = (c * p.kernel_h + kh) * p.kernel_w + kw;
                acc += col[p.off_col + (row * p.batch + n) * np +
                           oh * p.out_w + ow];
            }
        }
        x[p.off_x + n * p.x_stride[0] + c * p.x_stride[1] +
          h * p.x_stride[2] + w * p.x_stride[3]] = acc;
    }
}

/* Divisor of average window (oh, ow). */
T pool_divisor(const pool_params *p, int oh, int ow)
{
    if (p->count_include_pad)
        return (T)(p->kernel_h * p->kernel_w);
    int h0 = oh * p->stride_h - p->pad_top, w0 = ow * p->stride_w - p->pad_left;
    int h1 = min(h0 + p->kernel_h, p->height);
    int w1 = min(w0 + p->kernel_w, p->width);
    return (T)((h1 - max(h0, 0)) * (w1 - max(w0, 0)));
}

KILN_KERNEL void kiln_pool(__global const T *x, __global T *y,
                           __global int *idx, const pool_params P)
{
    pool_params p = P;
    int np = p.out_h * p.out_w;
    for (uint o = kiln_global_index(); o < (uint)p.n;
         o += kiln_global_count()) {
        int pix = (int)(o % (uint)np), pl = (int)(o / (uint)np);
        int oh = pix / p.out_w, ow = pix % p.out_w;
        int c = pl % p.channels, n = pl / p.channels;
        int hs = oh * p.stride_h - p.pad_top, ws = ow * p.stride_w - p.pad_left;
        int h0 = max(hs, 0), h1 = min(hs + p.kernel_h, p.height);
        int w0 = max(ws, 0), w1 = min(ws + p.kernel_w, p.width);
        int plane = p.off_in + n * p.in_stride[0] + c * p.in_stride[1];
        T acc = (T)0, best = (T)0;
        int best_at = -1;
        for (int h = h0; h < h1; h++) {
            for (int w = w0; w < w1; w++) {
                T v = x[plane + h * p.in_stride[2] + w * p.in_stride[3]];
                acc += v;
                if (best_at < 0 || (!isnan(best) && (v > best || isnan(v)))) {
                    best = v;
                    best_at = h * p.width + w;
                }
            }
        }
        if (p.op == POOL_MAX) {
            y[p.off_out + (int)o] = best;
            idx[p.off_idx + (int)o] = best_at;
        } else {
            y[p.off_out + (int)o] = acc / pool_divisor(&p, oh, ow);
        }
    }
}

/* First output along one axis whose window contains input x. */
int first_cover(int x, int stride, int pad, int k)
{
    int t = x + pad - k + 1;
    return t <= 0 ? 0 : (t + stride - 1) / stride;
}

KILN_KERNEL void kiln_pool_backward(__global const T *dy, __global T *dx,
                                    __global const int *idx,
                                    const pool_params P)
{
    pool_params p = P;
    int hw = p.height * p.width, np = p.out_h * p.out_w;
    for (uint i = kiln_global_index(); i < (uint)p.n;
         i += kiln_global_count()) {
        if (p.op == POOL_MAX) {
            /* i is a plane: serial scatter in output order. */
            int c = (int)i % p.channels, n = (int)i / p.channels;
            int dx0 = p.off_out + (int)i * hw;
            int dy0 = p.off_in + n * p.in_stride[0] + c * p.in_stride[1];
            for (int e = 0; e < hw; e++)
                dx[dx0 + e] = (T)0;
            for (int o = 0; o < np; o++) {
                int at = idx[p.off_idx + (int)i * np + o];
                if (at < 0 || at >= hw)
                    continue;
                dx[dx0 + at] += dy[dy0 + (o / p.out_w) * p.in_stride[2] +
                                   (o % p.out_w) * p.in_stride[3]];
            }
            continue;
        }
        int w = (int)(i % (uint)p.width);
        int rest = (int)(i / (uint)p.width);
        int h = rest % p.height;
        rest /= p.height;
        int c = rest % p.channels, n = rest / p.channels;
        int oh0 = first_cover(h, p.stride_h, p.pad_top, p.kernel_h);
        int oh1 = min((h + p.pad_top) / p.stride_h + 1, p.out_h);
        int ow0 = first_cover(w, p.stride_w, p.pad_left, p.kernel_w);
        int ow1 = min((w + p.pad_left) / p.stride_w + 1, p.out_w);
        int plane = p.off_in + n * p.in_stride[0] + c * p.in_stride[1];
        T acc = (T)0;
        for (int oh = oh0; oh < oh1; oh++)
            for (int ow = ow0; ow < ow1; ow++)
                acc += dy[plane + oh * p.in_stride[2] + ow * p.in_stride[3]] /
                       pool_divisor(&p, oh, ow);
        dx[p.off_out + (int)i] = acc;
    }
}
