/*
 * random.cl - KILN_K_RANDOM: Philox4x32-10 counter-based random numbers.
 *
 * Generator, counter layout and the exact formula of every distribution:
 * lib/queue/kernels_random.h; reference lib/cpu/cpu_random.c.  Element i
 * (row-major logical order) draws philox((lo(offset+i), hi(offset+i),
 * attempt, 0), (lo(seed), hi(seed))) and is written through the output's
 * strides; with DEVICE_OFFSET in dist the offset also adds the 64-bit
 * value in binding 1.  UNIFORM and BERNOULLI match the reference bit for
 * bit (hence FP_CONTRACT OFF: lo + (hi - lo) * u must not become an fma);
 * NORMAL uses this device's log, sqrt and cospi, within a few ulp of the
 * reference.
 *
 * Layout: one work-item per element, grid-stride over n, any grid.
 * Tunables: the workgroup size only.
 */
#pragma OPENCL FP_CONTRACT OFF

typedef struct {
    int n, dist, off_out, off_dev;
    uint seed_lo, seed_hi, offset_lo, offset_hi;
    uint a_lo, a_hi, b_lo, b_hi, thr_lo, thr_hi;
    int shape[KDIMS], stride_out[KDIMS];
    uint pad[6];
} random_params;

#define DIST_UNIFORM 0
#define DIST_NORMAL 1
#define DIST_TRUNCATED 2
#define DIST_BERNOULLI 3
#define DIST_MASK 0xff
#define DEVICE_OFFSET 0x100
#define TRUNC_ATTEMPTS 16

uint4 philox4x32_10(uint4 c, uint2 k)
{
    for (int r = 0; r < 10; r++) {
        if (r > 0)
            k += (uint2)(0x9E3779B9u, 0xBB67AE85u);
        uint lo0 = 0xD2511F53u * c.x, hi0 = mul_hi(0xD2511F53u, c.x);
        uint lo1 = 0xCD9E8D57u * c.z, hi1 = mul_hi(0xCD9E8D57u, c.z);
        c = (uint4)(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    }
    return c;
}

#if T_FLOAT
/* A uniform from w (24 bits for f32, 53 for f64; exact), in [0, 1) or,
 * with plus_one, in (0, 1]. */
T uniform01(uint w0, uint w1, int plus_one)
{
#if defined(T_F32)
    return ((float)(w0 >> 8) + (float)plus_one) * (1.0f / 16777216.0f);
#else
    double k = (double)w0 * 2097152.0 + (double)(w1 >> 11);
    return (k + (double)plus_one) * (1.0 / 9007199254740992.0);
#endif
}

/* sqrt(-2 ln u1) cos(2 pi u2); cospi keeps the argument exact. */
T box_muller(uint a0, uint a1, uint b0, uint b1)
{
    T u1 = uniform01(a0, a1, 1), u2 = uniform01(b0, b1, 0);
    return sqrt((T)-2 * log(u1)) * cospi((T)2 * u2);
}

/* One normal candidate from words (w.x, w.y) [f32] or all four [f64];
 * f32 has a second one in (w.z, w.w). */
T normal_first(uint4 w)
{
#if defined(T_F32)
    return box_muller(w.x, 0, w.y, 0);
#else
    return box_muller(w.x, w.y, w.z, w.w);
#endif
}

T truncated(uint4 c, uint2 key)
{
    T z = 0;
    for (uint k = 0; k < TRUNC_ATTEMPTS; k++) {
        c.z = k;
        uint4 w = philox4x32_10(c, key);
        z = normal_first(w);
        if (fabs(z) <= (T)2)
            return z;
#if defined(T_F32)
        z = box_muller(w.z, 0, w.w, 0);
        if (fabs(z) <= (T)2)
            return z;
#endif
    }
    return clamp(z, (T)-2, (T)2);
}
#endif

/* dev: binding 1, the {lo, hi} added to the offset under DEVICE_OFFSET
 * (otherwise out's buffer again, never read). */
KILN_KERNEL void kiln_random(__global T *out, __global const uint *dev,
                             const random_params P)
{
    random_params p = P;
    uint2 key = (uint2)(p.seed_lo, p.seed_hi);
    ulong offset = ((ulong)p.offset_hi << 32) | (ulong)p.offset_lo;
    if (p.dist & DEVICE_OFFSET)
        offset += ((ulong)dev[p.off_dev + 1] << 32) | (ulong)dev[p.off_dev];
    p.dist &= DIST_MASK;
    T a = T_FROM_BITS(p.a_lo, p.a_hi), b = T_FROM_BITS(p.b_lo, p.b_hi);
    for (uint i = kiln_global_index(); i < (uint)p.n;
         i += kiln_global_count()) {
        ulong ctr = offset + (ulong)i;
        uint4 c = (uint4)((uint)ctr, (uint)(ctr >> 32), 0u, 0u);
        uint4 w = philox4x32_10(c, key);
        T v = b;
        if (p.dist == DIST_BERNOULLI) {
            if (p.thr_hi != 0 || w.x < p.thr_lo)
                v = a;
        }
#if T_FLOAT
        else if (p.dist == DIST_UNIFORM) {
            v = a + (b - a) * uniform01(w.x, w.y, 0);
            if (!(v < b))
                v = a;
        } else {
            T z = p.dist == DIST_NORMAL ? normal_first(w) : truncated(c, key);
            v = a + b * z;
        }
#endif
        out[p.off_out + kiln_offset((int)i, p.shape, p.stride_out)] = v;
    }
}
