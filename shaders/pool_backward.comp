/*
 * pool_backward.comp - gradient of pooling (KILN_K_POOL_BACKWARD,
 * lib/queue/kernels_conv.h; reference lib/cpu/cpu_conv.c).
 *   op 1 (avg): one invocation per input element (n, c, h, w), adding
 *     dy / divisor over the windows that contain it in ascending (oh, ow)
 *     order (divisor as in pool.comp);
 *   op 0 (max): one invocation per plane (n, c): zero the dx plane, then
 *     dx[idx[o]] += dy[o] for the plane's outputs in order (indices outside
 *     the plane are skipped).  Serial per plane, so deterministic without
 *     atomics; the op is given no window geometry to gather with.
 * Binding 0: dy (strided), 1: dx (contiguous), 2: idx (i32, contiguous;
 * avg binds dx there, unused).  Grid-stride in x.  Tunables: workgroup size
 * only.  No shared memory.  Float T only.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, set = 0, binding = 0) readonly buffer Dy { T d[]; } dy_;
layout(std430, set = 0, binding = 1) buffer Dx { T d[]; } dx_;
layout(std430, set = 0, binding = 2) readonly buffer Idx { int d[]; } idx_;

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

void max_plane(int pl)
{
    int hw = p.height * p.width, np = p.out_h * p.out_w;
    int c = pl % p.channels, n = pl / p.channels;
    int dx0 = p.off_out + pl * hw;
    int dy0 = p.off_in + n * p.in_stride[0] + c * p.in_stride[1];
    for (int e = 0; e < hw; e++)
        dx_.d[dx0 + e] = T(0);
    for (int o = 0; o < np; o++) {
        int at = idx_.d[p.off_idx + pl * np + o];
        if (at < 0 || at >= hw)
            continue;
        dx_.d[dx0 + at] += dy_.d[dy0 + (o / p.out_w) * p.in_stride[2] +
                                 (o % p.out_w) * p.in_stride[3]];
    }
}

T divisor(int oh, int ow)
{
    if (p.count_include_pad != 0)
        return T(p.kernel_h * p.kernel_w);
    int h0 = oh * p.stride_h - p.pad_top, w0 = ow * p.stride_w - p.pad_left;
    int h1 = min(h0 + p.kernel_h, p.height);
    int w1 = min(w0 + p.kernel_w, p.width);
    return T((h1 - max(h0, 0)) * (w1 - max(w0, 0)));
}

/* First output along one axis whose window contains input x. */
int first_cover(int x, int stride, int pad, int k)
{
    int t = x + pad - k + 1;
    return t <= 0 ? 0 : (t + stride - 1) / stride;
}

void main()
{
    KILN_FOR_EACH(i, p.n) {
        if (p.op == 0) {
            max_plane(int(i));
            continue;
        }
        int w = int(i % uint(p.width));
        int rest = int(i / uint(p.width));
        int h = rest % p.height;
        rest /= p.height;
        int c = rest % p.channels, n = rest / p.channels;
        int oh0 = first_cover(h, p.stride_h, p.pad_top, p.kernel_h);
        int oh1 = min((h + p.pad_top) / p.stride_h + 1, p.out_h);
        int ow0 = first_cover(w, p.stride_w, p.pad_left, p.kernel_w);
        int ow1 = min((w + p.pad_left) / p.stride_w + 1, p.out_w);
        int plane = p.off_in + n * p.in_stride[0] + c * p.in_stride[1];
        T acc = T(0);
        for (int oh = oh0; oh < oh1; oh++)
            for (int ow = ow0; ow < ow1; ow++)
                acc += dy_.d[plane + oh * p.in_stride[2] +
                             ow * p.in_stride[3]] / divisor(oh, ow);
        dx_.d[p.off_out + int(i)] = acc;
    }
}
