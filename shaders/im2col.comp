/*
 * im2col.comp - convolution patches to columns (KILN_K_IM2COL,
 * lib/queue/kernels_conv.h; reference lib/cpu/cpu_conv.c):
 *   col[(c*KH + kh)*KW + kw][n][oh*OW + ow] =
 *       x[n, c, oh*sh - pt + kh*dh, ow*sw - pl + kw*dw], 0 outside the image.
 * x is read through its four strides, so views need no copy.
 * Binding 0: x, 1: col.  One invocation per column element, grid-stride
 * in x.  Tunables: workgroup size only.  No shared memory.  Float T only.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, set = 0, binding = 0) readonly buffer X { T d[]; } x_;
layout(std430, set = 0, binding = 1) writeonly buffer Col { T d[]; } col_;

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

void main()
{
    uint np = uint(p.out_h * p.out_w);
    KILN_FOR_EACH(i, p.n) {
        int pix = int(i % np);
        int rest = int(i / np);
        int n = rest % p.batch, row = rest / p.batch;
        int kw = row % p.kernel_w, kh = (row / p.kernel_w) % p.kernel_h;
        int c = row / (p.kernel_w * p.kernel_h);
        int h = (pix / p.out_w) * p.stride_h - p.pad_top + kh * p.dil_h;
        int w = (pix % p.out_w) * p.stride_w - p.pad_left + kw * p.dil_w;
        T v = T(0);
        if (h >= 0 && h < p.height && w >= 0 && w < p.width)
            v = x_.d[p.off_x + n * p.x_stride[0] + c * p.x_stride[1] +
                     h * p.x_stride[2] + w * p.x_stride[3]];
        col_.d[p.off_col + int(i)] = v;
    }
}
