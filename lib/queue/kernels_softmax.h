/*
 * kernels_softmax.h - parameter blocks of KILN_K_SOFTMAX,
 * KILN_K_SOFTMAX_BACKWARD and KILN_K_SOFTMAX_XENT.
 *
 * Rows: a tensor is seen as rows along one axis.  Row r (0 <= r < nrows)
 * is decomposed over outer_shape (KILN_SOFTMAX_OUTER dims, outermost first,
 * right-aligned, unused leading dims 1 with stride 0) and its element j
 * (0 <= j < n) of tensor X is
 *   X[off_X + outer_offset(r, outer_X) + j * axis_X].
 * Five outer dims suffice: a tensor has at most 6 dims and one is the axis.
 *
 * KILN_K_SOFTMAX: a = x, out = y.  With m = max_j x, s = sum_j exp(x - m):
 *   log = 0: y = exp(x - m) / s;   log = 1: y = x - m - log(s).
 *   A NaN anywhere in the row makes the row NaN.  Binding 0: x, 1: y.
 * KILN_K_SOFTMAX_BACKWARD: a = y (the forward output), b = dy, out = dx.
 *   log = 0: dx = y * (dy - sum(dy * y));  log = 1: dx = dy - exp(y) sum(dy).
 *   Binding 0: y, 1: dy, 2: dx.
 * Workgroup: one group per row (local[0] threads), groups loop over rows
 * grid-stride; max and sums go through local/shared memory
 * (local[0] * sizeof(T) bytes).
 */
#ifndef KILN_KERNELS_SOFTMAX_H
#define KILN_KERNELS_SOFTMAX_H

#include <stdint.h>

#include "queue/kernels.h"

#define KILN_SOFTMAX_OUTER 5

typedef struct kiln_softmax_params {
    int32_t nrows;
    int32_t n;
    int32_t log;
    int32_t off_a, off_b, off_out;
    int32_t axis_a, axis_b, axis_out;
    int32_t outer_shape[KILN_SOFTMAX_OUTER];
    int32_t outer_a[KILN_SOFTMAX_OUTER];
    int32_t outer_b[KILN_SOFTMAX_OUTER];
    int32_t outer_out[KILN_SOFTMAX_OUTER];
} kiln_softmax_params;

/*
 * KILN_K_SOFTMAX_XENT: per row of logits x [nrows, ncls] (element (r, c)
 * at off_x + r*x_sn + c*x_sc), T = the logits' dtype, U = the labels'.
 * Binding 0: x (T), 1: labels (U), 2: loss (T, [nrows], contiguous from
 * off_loss), 3: grad (T, [nrows, ncls], contiguous from off_grad).
 * With m = max_c x, s = sum_c exp(x - m), lse = m + log(s):
 *   INDEX (U = i32, label = lab[off_lab + r*lab_sn]):
 *     loss[r] = lse - x[label]; target = one-hot(label).  A label outside
 *     0..ncls-1 gives loss NaN and a NaN gradient row.
 *   PROBS (U = T, p = lab[off_lab + r*lab_sn + c*lab_sc]):
 *     loss[r] = sum over p != 0 of p * (lse - x)  (terms with p = 0 are
 *     skipped, so -inf logits with zero probability stay finite);
 *     target = p.
 *   With want_grad: grad[r, c] = (exp(x - m) / s - target) * scale, scale
 *   in T's bits (1/N for the mean loss).  Without, binding 3 is not
 *   touched (the op binds some other T tensor there).
 *   SAMPLE (U = i32; categorical sampling): z = x * scale (scale =
 *     1/temperature); u = loss[off_loss + r] is an input here, a uniform
 *     in [0, 1); writes to lab[off_lab + r*lab_sn] the first class k with
 *     u * s < sum_{c <= k} exp(z_c - m), or, when rounding leaves no such
 *     class, the last class with exp(z_c - m) > 0.  Binding 3 unused.
 * Workgroup as for KILN_K_SOFTMAX; shared memory local[0] * sizeof(T).
 */
enum kiln_xent_mode {
    KILN_XENT_INDEX = 0,
    KILN_XENT_PROBS,
    KILN_XENT_SAMPLE,
};

typedef struct kiln_xent_params {
    int32_t nrows, ncls, mode, want_grad;
    int32_t off_x, off_lab, off_loss, off_grad;
    int32_t x_sn, x_sc, lab_sn, lab_sc;
    uint32_t scale_lo, scale_hi;
} kiln_xent_params;

#endif /* KILN_KERNELS_SOFTMAX_H */
