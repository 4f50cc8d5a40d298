/*
 * rnn_internal.h - what rnn.c (forward) and rnn_backward.c share: the tape
 * and small view helpers.
 *
 * Per layer l the forward pass keeps, time-major:
 *   x   [T, N, I_l]   the layer's input (layer 0: x; above: the output of
 *                     the layer below), contiguous
 *   hs  [T+1, N, H]   row 0 = h0 (uninitialised when h0 is zero: never
 *                     read then), row t+1 = h after step t
 *   cs  [T+1, N, H]   the same for c (LSTM only)
 *   acts [T, N, 4H]   LSTM i f g o / GRU r z n ghn (none for RNN)
 * so backward needs no recomputation beyond tanh(c).
 */
#ifndef KILN_OPS_RNN_INTERNAL_H
#define KILN_OPS_RNN_INTERNAL_H

#include "ops/ops.h"
#include "queue/kernels_rnn.h"

typedef struct rnn_layer_tape {
    kiln_tensor *x, *hs, *cs, *acts;
    int has_h0, has_c0;
} rnn_layer_tape;

struct kiln_rnn_tape {
    kiln_context *ctx;
    kiln_rnn_options o;          /* layers >= 1                          */
    kiln_dtype dtype;
    int64_t T, N, I, H;
    int G;                       /* gate blocks: 1, 4 or 3               */
    kiln_rnn_weights *w;         /* held views of the weights            */
    rnn_layer_tape *l;
};

/** Gate blocks of @kind: 1 (RNN), 4 (LSTM), 3 (GRU). */
static inline int rnn_gates(kiln_rnn_kind kind)
{
    return kind == KILN_LSTM ? 4 : kind == KILN_GRU ? 3 : 1;
}

/**
 * Fills @dst with a header for the contiguous block of shape @shape that
 * starts @off elements into the contiguous tensor @base.  The header lives
 * on the caller's stack and holds no reference (never kiln_tensor_free it):
 * the per-step views of the time loop then cost no allocation.
 */
static inline kiln_tensor *rnn_sub(kiln_tensor *dst, const kiln_tensor *base,
                                   int64_t off, int ndim, const int64_t *shape)
{
    *dst = *base;
    dst->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        dst->shape[i] = shape[i];
    kiln__contiguous_strides(ndim, dst->shape, dst->stride);
    dst->offset = base->offset + off;
    return dst;
}

/** A held (reference-counted) header for @t, or NULL for NULL. */
static inline kiln_tensor *rnn_hold(kiln_tensor *t)
{
    return t ? kiln__tensor_view(t) : NULL;
}

#endif /* KILN_OPS_RNN_INTERNAL_H */
