/*
 * kernels_norm.h - parameter blocks of the local response normalisation and
 * embedding (row gather / scatter) kernels.  Rules as in kernels.h: 32-bit
 * fields, at most 128 bytes, element offsets from the bound block's start,
 * scalars in T's bits.  Implementations: lib/cpu/cpu_norm.c,
 * kernels/norm.cl, shaders/lrn*.comp, shaders/gather_rows.comp,
 * shaders/scatter_rows.comp.
 */
#ifndef KILN_KERNELS_NORM_H
#define KILN_KERNELS_NORM_H

#include <stdint.h>

/*
 * KILN_K_LRN and KILN_K_LRN_BACKWARD (AlexNet's local response
 * normalisation across channels, PyTorch's LocalResponseNorm).
 * Tensors are contiguous [outer, channels, inner]; element i has channel
 * c = (i / inner) % channels.  With the window of `size` channels
 *   W(c) = c - size/2 .. c + (size-1)/2, clipped to 0..channels-1,
 *   s_c = k + alpha/size * sum_{j in W(c)} x_j^2:
 * LRN:           y_c = x_c * s_c^-beta.
 *                Binding 0: x, 1: y (off_a = x, off_b unused, off_out = y).
 * LRN_BACKWARD:  dx_c = dy_c * s_c^-beta
 *                       - 2 alpha beta/size * x_c * sum_{j: c in W(j)}
 *                                                   dy_j * y_j / s_j
 *                (y_j / s_j = x_j s_j^(-beta-1); y is the forward output).
 *                Binding 0: dy (off_a), 1: x (off_b), 2: y (off_c),
 *                3: dx (off_out).
 * One work-item per element, a gather over the windows: no atomics.
 */
typedef struct kiln_lrn_params {
    int32_t n;          /* elements                                     */
    int32_t channels;
    int32_t inner;      /* elements per channel plane (H*W)             */
    int32_t size;       /* window, >= 1                                 */
    int32_t off_a, off_b, off_c, off_out;
    uint32_t alpha_lo, alpha_hi;
    uint32_t beta_lo, beta_hi;
    uint32_t k_lo, k_hi;
} kiln_lrn_params;

/*
 * KILN_K_GATHER_ROWS: out[p*cols + d] = table[off_table + v*row_stride +
 * d*col_stride] with v = idx[off_idx + p], or 0 when v is outside
 * 0..rows-1.  n = positions * cols.  Binding 0: table (T), 1: idx (i32),
 * 2: out (T, contiguous).  One work-item per output element.
 *
 * KILN_K_SCATTER_ROWS: out[v*cols + d] = sum over p = 0, 1, ... with
 * idx[off_idx + p] == v of dy[off_dy + p*cols + d] (dy contiguous), added
 * in ascending p, so the result is the same on every run.  n = rows * cols.
 * Binding 0: dy (T), 1: idx (i32), 2: out (T, contiguous).  One work-item
 * per output element, each scanning every index: O(rows * cols * positions)
 * work, no atomics.
 */
typedef struct kiln_rows_params {
    int32_t n;          /* output elements                              */
    int32_t rows;       /* table rows (the vocabulary)                  */
    int32_t cols;       /* row length D                                 */
    int32_t positions;  /* number of indices                            */
    int32_t off_src;    /* table (gather) or dy (scatter)               */
    int32_t off_idx;
    int32_t off_out;
    int32_t row_stride; /* gather: table strides; scatter: unused       */
    int32_t col_stride;
} kiln_rows_params;

#endif /* KILN_KERNELS_NORM_H */
