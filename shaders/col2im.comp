/*
 * col2im.comp - columns back to an image, summing overlaps (KILN_K_COL2IM,
 * lib/queue/kernels_conv.h; reference lib/cpu/cpu_conv.c).  A gather: each
 * image element (n, c, h, w) adds, in ascending (kh, kw) order, the column
 * entries [(c*KH + kh)*KW + kw][n][oh*OW + ow] whose tap lands on it, so
 * no atomics are needed and the sum order is fixed.
 * Binding 0: col, 1: x (written through x_stride).  One invocation per
 * image element, grid-stride in x.  Tunables: workgroup size only.  No
 * shared memory.  Float T only.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, set = 0, binding = 0) readonly buffer Col { T d[]; } col_;
layout(std430, set = 0, binding = 1) writeonly buffer X { T d[]; } x_;

layout(push_constant, std430) uniform Params {
    int n, off_x, off_col;
    int batch, channels, height, width;
    int out_h, out_w;
    int kernel_h, kernel_w;
    int stride_h, stride_w;
    int pad_top, pad_left;
    int dil_h, dil_w;
    int x_stride[4];
} p;

/* The output index along one axis whose tap k reaches input x, or -1. */
int tap_source(int x, int k, int stride, int pad, int dil, int outn)
{
    int t = x + pad - k * dil;
    if (t < 0 || t % stride != 0 || t / stride >= outn)
        return -1;
    return t / stride;
}

void main()
{
    int np = p.out_h * p.out_w;
    KILN_FOR_EACH(i, p.n) {
        int w = int(i % uint(p.width));
        int rest = int(i / uint(p.width));
        int h = rest % p.height;
        rest /= p.height;
        int c = rest % p.channels, n = rest / p.channels;
        T acc = T(0);
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
                acc += col_.d[p.off_col + (row * p.batch + n) * np +
                              oh * p.out_w + ow];
            }
        }
        x_.d[p.off_x + n * p.x_stride[0] + c * p.x_stride[1] +
             h * p.x_stride[2] + w * p.x_stride[3]] = acc;
    }
}
