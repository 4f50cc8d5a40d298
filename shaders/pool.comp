/*
 * pool.comp - max / average pooling (KILN_K_POOL, lib/queue/kernels_conv.h;
 * reference lib/cpu/cpu_conv.c).  Output o = (n, c, oh, ow) covers rows
 * oh*sh - pt + [0, KH) and columns likewise, clipped to the image:
 *   op 0 (max): the first maximum in row-major window order; padding never
 *     wins; NaN counts as the largest (first NaN wins); idx[o] = h*W + w;
 *   op 1 (avg): sum / divisor, divisor = KH*KW with count_include_pad,
 *     else the number of in-image elements.
 * Binding 0: x (strided), 1: y, 2: idx (i32; avg binds y there, unused).
 * One invocation per output, grid-stride in x.  Tunables: workgroup size
 * only.  No shared memory.  Float T only.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, set = 0, binding = 0) readonly buffer X { T d[]; } x_;
layout(std430, set = 0, binding = 1) writeonly buffer Y { T d[]; } y_;
layout(std430, set = 0, binding = 2) writeonly buffer Idx { int d[]; } idx_;

layout(push_constant, std430) uniform Params {
    int n, op, count_include_pad;
    int off_in, off_out, off_idx;
    int channels, height, width;
    int out_h, out_w;
    int kernel_h, kernel_w;
    int stride_h, stride_w;
    int pad_top, pad_left;
    int in_stride[4];
} p;

void main()
{
    uint np = uint(p.out_h * p.out_w);
    KILN_FOR_EACH(o, p.n) {
        int pix = int(o % np), pl = int(o / np);
        int oh = pix / p.out_w, ow = pix % p.out_w;
        int c = pl % p.channels, n = pl / p.channels;
        int hs = oh * p.stride_h - p.pad_top, ws = ow * p.stride_w - p.pad_left;
        int h0 = max(hs, 0), h1 = min(hs + p.kernel_h, p.height);
        int w0 = max(ws, 0), w1 = min(ws + p.kernel_w, p.width);
        int plane = p.off_in + n * p.in_stride[0] + c * p.in_stride[1];
        T acc = T(0), best = T(0);
        int best_at = -1;
        for (int h = h0; h < h1; h++) {
            for (int w = w0; w < w1; w++) {
                T v = x_.d[plane + h * p.in_stride[2] + w * p.in_stride[3]];
                acc += v;
                if (best_at < 0 || (!isnan(best) && (v > best || isnan(v)))) {
                    best = v;
                    best_at = h * p.width + w;
                }
            }
        }
        if (p.op == 0) {
            y_.d[p.off_out + int(o)] = best;
            idx_.d[p.off_idx + int(o)] = best_at;
        } else {
            int cnt = p.count_include_pad != 0 ? p.kernel_h * p.kernel_w
                                               : (h1 - h0) * (w1 - w0);
            y_.d[p.off_out + int(o)] = acc / T(cnt);
        }
    }
}
