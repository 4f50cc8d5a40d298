/*
 * kernels_conv.h - parameter blocks of the convolution and pooling kernels
 * (KILN_K_IM2COL, KILN_K_COL2IM, KILN_K_POOL, KILN_K_POOL_BACKWARD).
 *
 * Same rules as kernels.h: 32-bit fields, at most 128 bytes, element
 * offsets and strides counted from the start of the bound block.  The
 * reference is lib/cpu/cpu_conv.c; kernels/conv.cl and shaders/im2col.comp,
 * col2im.comp, pool.comp, pool_backward.comp declare the same layouts.
 */
#ifndef KILN_KERNELS_CONV_H
#define KILN_KERNELS_CONV_H

#include <stdint.h>

/*
 * KILN_K_IM2COL: images x [N, C, H, W] (any strides x_stride = n, c, h, w)
 * to columns col [C*KH*KW][N][OH*OW] (contiguous from off_col):
 *   col[((c*KH + kh)*KW + kw), n, oh*OW + ow] =
 *       x[n, c, oh*stride_h - pad_top + kh*dil_h,
 *             ow*stride_w - pad_left + kw*dil_w],   0 outside the image.
 * The channel-major row order makes group g's rows one contiguous block
 * [C/G*KH*KW][N][OH*OW], which is what the per-group GEMM reads.
 * Binding 0: x, 1: col.  One work-item per column element (n = count).
 *
 * KILN_K_COL2IM: the adjoint, as a gather (no atomics, deterministic):
 *   x[n, c, h, w] = sum over (kh, kw) ascending of col[row, n, oh, ow]
 * for every (kh, kw) whose tap lands on (h, w) from a valid output (oh, ow).
 * x is written through x_stride (the op layer passes contiguous strides).
 * Binding 0: col, 1: x.  One work-item per image element (n = count).
 */
typedef struct kiln_im2col_params {
    int32_t n;                 /* work-items                             */
    int32_t off_x, off_col;
    int32_t batch, channels, height, width;
    int32_t out_h, out_w;
    int32_t kernel_h, kernel_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left;
    int32_t dil_h, dil_w;
    int32_t x_stride[4];       /* n, c, h, w                             */
} kiln_im2col_params;

/* Pooling ops (kiln_pool_params.op). */
enum kiln_pool_kop {
    KILN_KPOOL_MAX = 0,
    KILN_KPOOL_AVG,
};

/*
 * KILN_K_POOL: y[n, c, oh, ow] over the window rows
 * oh*stride_h - pad_top + [0, kernel_h), columns likewise, of x [N, C, H, W]
 * (strides in_stride = n, c, h, w); y contiguous [N, C, OH, OW] at off_out.
 *   MAX: the largest in-image element (padding never wins; NaN counts as
 *        the largest, the first NaN wins); idx[o] (i32, contiguous at
 *        off_idx) = h*W + w of the first maximum in row-major window order.
 *   AVG: sum of the in-image elements / divisor, divisor = kernel_h*kernel_w
 *        with count_include_pad, else the number of in-image elements.
 * Binding 0: x, 1: y, 2: idx (MAX only; AVG binds y again as a dummy).
 * One work-item per output (n = N*C*OH*OW).
 *
 * KILN_K_POOL_BACKWARD: dx [N, C, H, W] contiguous at off_out from dy
 * [N, C, OH, OW] (strides in_stride):
 *   AVG: one work-item per input element (n = N*C*H*W), summing
 *        dy / divisor over the windows that contain it, in ascending
 *        (oh, ow) order.
 *   MAX: one work-item per plane (n = N*C): zeroes its dx plane, then adds
 *        dy[o] to dx[idx[o]] for the plane's outputs in order (idx contiguous
 *        at off_idx; indices outside 0..H*W-1 are skipped).  Serial per
 *        plane, so deterministic: kiln_max_pool2d_backward is given no
 *        window geometry, so a per-element gather cannot find its windows.
 * Binding 0: dy, 1: dx, 2: idx (MAX only; AVG binds dx again).
 */
typedef struct kiln_pool_params {
    int32_t n;
    int32_t op;
    int32_t count_include_pad;
    int32_t off_in, off_out, off_idx;
    int32_t channels, height, width;
    int32_t out_h, out_w;
    int32_t kernel_h, kernel_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left;
    int32_t in_stride[4];      /* n, c, h, w of the strided input        */
} kiln_pool_params;

#endif /* KILN_KERNELS_CONV_H */
