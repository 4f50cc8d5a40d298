/*
 * kernels_random.h - the parameter block of KILN_K_RANDOM and the
 * generator every backend must reproduce bit for bit.
 *
 * Generator: Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random
 * numbers: as easy as 1, 2, 3", SC 2011), the Random123 variant: 10 rounds,
 * multipliers M0 = 0xD2511F53, M1 = 0xCD9E8D57, key increments
 * W0 = 0x9E3779B9, W1 = 0xBB67AE85, the key bumped before rounds 2..10.
 *
 * Element i (row-major logical order of the output, which may be a strided
 * view) draws the block philox(ctr, key) with
 *   key = (seed lo32, seed hi32),
 *   ctr = (lo32(offset + i), hi32(offset + i), attempt, 0)
 * giving words w0..w3.  `attempt` is 0 except for truncated-normal retries
 * (below): using the third word rather than adding 2^32 * k to the 64-bit
 * counter keeps retries disjoint from the counters of every other offset.
 *
 * Distributions (dist field):
 *   UNIFORM    f32: u = (w0 >> 8) * 2^-24; f64: u = (w0 * 2^21 + (w1 >> 11))
 *              * 2^-53; value = lo + (hi - lo) * u computed in T without
 *              fused multiply-add, and lo when rounding gives hi (so the
 *              result is always in [lo, hi)).  Bit-exact on every backend.
 *   NORMAL     Box-Muller on two uniforms: u1 in (0, 1] (the uniform's
 *              integer + 1), u2 in [0, 1); z = sqrt(-2 ln u1) cos(2 pi u2);
 *              value = mean + std * z.  f32 takes u1, u2 from w0, w1 (24
 *              bits each), f64 from (w0, w1) and (w2, w3) (53 bits each).
 *              Devices compute in T with their own log/sqrt/cos, so results
 *              agree within a few ulp, not bit for bit.
 *   TRUNCATED_NORMAL  candidates z in order: f32 (w0, w1) then (w2, w3) of
 *              attempt 0, then of attempts 1, 2, ...; f64 one candidate per
 *              attempt.  The first |z| <= 2 is taken; after
 *              KILN_RANDOM_TRUNC_ATTEMPTS attempts (probability < 1e-20)
 *              the last candidate is clamped to [-2, 2].
 *   BERNOULLI  value = w0 < threshold ? a : b, threshold = ceil(p * 2^32)
 *              as a 33-bit number (thr_hi = 1 means 2^32: always a), so the
 *              draw is exact integer arithmetic on every backend and dtype.
 *              Bernoulli is (a, b) = (1, 0); dropout's mask is
 *              (1 / (1 - rate), 0) with p = 1 - rate.
 * Scalars a, b are in T's bits (kernels.h): uniform (lo, hi), normal
 * (mean, std), bernoulli (value if drawn, value if not).
 *
 * Device offset (dist | KILN_RANDOM_DEVICE_OFFSET): the stream's offset is
 * (offset_hi:offset_lo) + the 64-bit value {lo, hi} read from binding 1 at
 * u32 element off_dev (mod 2^64), then element i draws at that + i exactly
 * as above, so the values are bit-identical to the plain mode with the sum
 * as its offset.  A recorded dispatch keeps its parameter block, so this is
 * how a replay draws a fresh stream: the host rewrites the two words
 * between replays (graph dropout, kiln__graph_prepare_replay).  Without
 * the flag binding 1 is still bound (to out again: every RANDOM binds the
 * same two slots) and never read.
 * Binding 0: out (T); binding 1: the offset words (u32).  Grid-stride over
 * n.  T = i32 only for BERNOULLI.
 */
#ifndef KILN_KERNELS_RANDOM_H
#define KILN_KERNELS_RANDOM_H

#include <stdint.h>

#include "queue/kernels.h"

enum kiln_random_dist {
    KILN_RANDOM_UNIFORM = 0,
    KILN_RANDOM_NORMAL,
    KILN_RANDOM_TRUNCATED_NORMAL,
    KILN_RANDOM_BERNOULLI,
};

/* Flag or-ed into dist: add binding 1's 64-bit value to the offset. */
#define KILN_RANDOM_DEVICE_OFFSET 0x100
#define KILN_RANDOM_DIST_MASK 0xff

#define KILN_RANDOM_TRUNC_ATTEMPTS 16

typedef struct kiln_random_params {
    int32_t n;
    int32_t dist;
    int32_t off_out;
    int32_t off_dev;      /* binding 1's {lo, hi}, in u32 elements */
    uint32_t seed_lo, seed_hi;
    uint32_t offset_lo, offset_hi;
    uint32_t a_lo, a_hi;
    uint32_t b_lo, b_hi;
    uint32_t thr_lo, thr_hi;
    int32_t shape[KILN_KDIMS];
    int32_t stride_out[KILN_KDIMS];
} kiln_random_params;

#define KILN_PHILOX_M0 0xD2511F53u
#define KILN_PHILOX_M1 0xCD9E8D57u
#define KILN_PHILOX_W0 0x9E3779B9u
#define KILN_PHILOX_W1 0xBB67AE85u

/* Philox4x32-10 on the host: the definition the kernels mirror (used by
 * the C reference and by kiln_random_permutation). */
static inline void kiln_philox4x32_10(const uint32_t ctr_in[4],
                                      const uint32_t key_in[2],
                                      uint32_t out[4])
{
    uint32_t c0 = ctr_in[0], c1 = ctr_in[1], c2 = ctr_in[2], c3 = ctr_in[3];
    uint32_t k0 = key_in[0], k1 = key_in[1];
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += KILN_PHILOX_W0;
            k1 += KILN_PHILOX_W1;
        }
        uint64_t p0 = (uint64_t)KILN_PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)KILN_PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* The block of element @index of a stream (seed, offset). */
static inline void kiln_philox_element(uint64_t seed, uint64_t offset,
                                       uint64_t index, uint32_t attempt,
                                       uint32_t out[4])
{
    uint64_t c = offset + index;
    uint32_t ctr[4] = {(uint32_t)c, (uint32_t)(c >> 32), attempt, 0};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    kiln_philox4x32_10(ctr, key, out);
}

#endif /* KILN_KERNELS_RANDOM_H */
