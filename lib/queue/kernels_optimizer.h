/*
 * kernels_optimizer.h - the parameter block of KILN_K_OPTIMIZER, the fused
 * parameter update of every optimizer (lib/nn/optimizer.c).
 *
 * One pass over n contiguous elements: each of p, g, s1, s2 is read once and
 * (p, s1, s2) written once.  Per element, in T:
 *   g' = g + wd p     (L2 weight decay; every kind but ADAMW, whose decay
 *                      is decoupled)
 *   SGD       p -= lr g'
 *   MOMENTUM  s1 = mu s1 + damp g';  p -= lr s1
 *   NESTEROV  s1 = mu s1 + damp g';  p -= lr (g' + mu s1)
 *   ADAGRAD   s1 += g'^2;            p -= lr g' / (sqrt(s1) + eps)
 *   RMSPROP   s1 = rho s1 + (1 - rho) g'^2;  p -= lr g' / (sqrt(s1) + eps)
 *   ADAM      s1 = b1 s1 + (1 - b1) g';  s2 = b2 s2 + (1 - b2) g'^2;
 *             p -= lr (s1 / bc1) / (sqrt(s2 / bc2) + eps)
 *   ADAMW     p -= lr wd p first (with the old p), then ADAM with g' = g
 *   ADADELTA  s1 = rho s1 + (1 - rho) g'^2;
 *             u = sqrt(s2 + eps) / sqrt(s1 + eps) g';
 *             s2 = rho s2 + (1 - rho) u^2;  p -= lr u
 * damp is 1, or 1 - mu for the exponentially weighted average; bc1 and bc2
 * are Adam's bias corrections 1 - beta^t, computed on the host per step;
 * the factors 1 - b1, 1 - b2 and 1 - rho are passed precomputed too.
 * Kinds are kiln_optimizer_kind values (kiln.h).  Scalars in T's bits
 * (kernels.h).  Binding 0: p (read-write), 1: g (read), 2: s1, 3: s2
 * (read-write; a kind without them gets g bound there, never touched).
 * Offsets in elements from each block's start; all four are dense.
 *
 * Device scalars (kind | KILN_OPT_DEVICE_SCALARS): lr, bc1 and bc2 are read
 * from binding 4 at elements lr_lo, lr_lo + 1, lr_lo + 2 (T) instead of the
 * block, so a recorded step replays with the values the host wrote into
 * that small buffer before the replay (kiln_optimizer_begin_step).  Without
 * the flag, binding 4 is g again and never touched.
 */
#ifndef KILN_KERNELS_OPTIMIZER_H
#define KILN_KERNELS_OPTIMIZER_H

#include <stdint.h>

#include "queue/kernels.h"

#define KILN_OPT_DEVICE_SCALARS 0x100
#define KILN_OPT_KIND_MASK 0xff

typedef struct kiln_optimizer_params {
    int32_t n;
    int32_t kind;
    int32_t off_p, off_g, off_s1, off_s2;
    uint32_t lr_lo, lr_hi;
    uint32_t momentum_lo, momentum_hi;
    uint32_t damp_lo, damp_hi;
    uint32_t beta1_lo, beta1_hi;
    uint32_t beta2_lo, beta2_hi;
    uint32_t rho_lo, rho_hi;
    uint32_t eps_lo, eps_hi;
    uint32_t wd_lo, wd_hi;
    uint32_t bc1_lo, bc1_hi;
    uint32_t bc2_lo, bc2_hi;
    /* 1 - beta1, 1 - beta2, 1 - rho, rounded once from double: in f32,
     * 1 - (float)0.999 would be off by 1.3e-5 relative. */
    uint32_t omb1_lo, omb1_hi;
    uint32_t omb2_lo, omb2_hi;
    uint32_t omrho_lo, omrho_hi;
} kiln_optimizer_params;

_Static_assert(sizeof(kiln_optimizer_params) <= 128,
               "kiln_optimizer_params exceeds the 128-byte block");

#endif /* KILN_KERNELS_OPTIMIZER_H */
