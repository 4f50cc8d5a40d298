/*
 * random.comp - KILN_K_RANDOM: Philox4x32-10 counter-based random numbers
 * (generator, counter layout and every distribution's formula:
 * lib/queue/kernels_random.h; reference lib/cpu/cpu_random.c).
 *
 * Element i (row-major logical order) draws philox((lo(offset + i),
 * hi(offset + i), attempt, 0), (lo(seed), hi(seed))) and is written
 * through the output's strides; with DEVICE_OFFSET in dist the offset
 * also adds the 64-bit value in binding 1.  UNIFORM and BERNOULLI are
 * bit-exact with the reference (`precise` keeps lo + (hi - lo) * u from
 * becoming an fma); NORMAL uses common.glsl's log, the builtin sqrt and
 * the cos below, which takes its argument in turns so the reduction to
 * [0, pi/4] is exact (GLSL has no double cos, and its float cos may be
 * off by 2^-11).
 * Layout: one invocation per element, grid-stride over n in x.
 * Bindings 0: out, 1: the offset words.  Tunables: workgroup size only.
 * Variants: f32, f64 (every distribution), i32 (BERNOULLI only).
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, set = 0, binding = 0) writeonly buffer Out { T d[]; } out_;
/* The {lo, hi} added to the offset under DEVICE_OFFSET (otherwise out's
 * buffer again, never read). */
layout(std430, set = 0, binding = 1) readonly buffer Dev { uint w[]; } dev_;

layout(push_constant, std430) uniform Params {
    int n, dist, off_out, off_dev;
    uint seed_lo, seed_hi, offset_lo, offset_hi;
    uint a_lo, a_hi, b_lo, b_hi, thr_lo, thr_hi;
    int shape[KILN_KDIMS];
    int stride_out[KILN_KDIMS];
} p;

#define DIST_UNIFORM 0
#define DIST_NORMAL 1
#define DIST_BERNOULLI 3
#define DIST_MASK 0xff
#define DEVICE_OFFSET 0x100
#define TRUNC_ATTEMPTS 16u

uvec4 philox4x32_10(uvec4 c, uvec2 k)
{
    for (int r = 0; r < 10; r++) {
        if (r > 0)
            k += uvec2(0x9E3779B9u, 0xBB67AE85u);
        uint hi0, lo0, hi1, lo1;
        umulExtended(0xD2511F53u, c.x, hi0, lo0);
        umulExtended(0xCD9E8D57u, c.z, hi1, lo1);
        c = uvec4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    }
    return c;
}

#if !defined(T_I32)
#if defined(T_F64)
const double TWO_PI = 6.283185307179586476925LF;

/* sin x and cos x for |x| <= pi/4: Taylor series to x^17 / x^18. */
double sin_poly(double x)
{
    double s = x * x;
    double q = -1.0LF / 355687428096000.0LF;
    q = q * s + 1.0LF / 1307674368000.0LF;
    q = q * s - 1.0LF / 6227020800.0LF;
    q = q * s + 1.0LF / 39916800.0LF;
    q = q * s - 1.0LF / 362880.0LF;
    q = q * s + 1.0LF / 5040.0LF;
    q = q * s - 1.0LF / 120.0LF;
    q = q * s + 1.0LF / 6.0LF;
    return x - x * s * q;
}

double cos_poly(double x)
{
    double s = x * x;
    double q = 1.0LF / 6402373705728000.0LF;
    q = q * s - 1.0LF / 20922789888000.0LF;
    q = q * s + 1.0LF / 87178291200.0LF;
    q = q * s - 1.0LF / 479001600.0LF;
    q = q * s + 1.0LF / 3628800.0LF;
    q = q * s - 1.0LF / 40320.0LF;
    q = q * s + 1.0LF / 720.0LF;
    q = q * s - 1.0LF / 24.0LF;
    q = q * s + 0.5LF;
    return 1.0LF - s * q;
}

/* u in [0, 1) or (0, 1] (plus_one): 53 bits from two words, exact. */
double uniform01(uint w0, uint w1, uint plus_one)
{
    precise double k = double(w0) * 2097152.0LF + double(w1 >> 11);
    return (k + double(plus_one)) * (1.0LF / 9007199254740992.0LF);
}
#else
const float TWO_PI = 6.28318531;

/* sin x and cos x for |x| <= pi/4: Taylor series to x^9 / x^10. */
float sin_poly(float x)
{
    float s = x * x;
    float q = 1.0 / 362880.0;
    q = q * s - 1.0 / 5040.0;
    q = q * s + 1.0 / 120.0;
    q = q * s - 1.0 / 6.0;
    return x + x * s * q;
}

float cos_poly(float x)
{
    float s = x * x;
    float q = -1.0 / 3628800.0;
    q = q * s + 1.0 / 40320.0;
    q = q * s - 1.0 / 720.0;
    q = q * s + 1.0 / 24.0;
    q = q * s - 0.5;
    return 1.0 + s * q;
}

/* u in [0, 1) or (0, 1] (plus_one): 24 bits, exact. */
float uniform01(uint w0, uint w1, uint plus_one)
{
    return float((w0 >> 8) + plus_one) * (1.0 / 16777216.0);
}
#endif

/* cos(2 pi t) for t in [0, 1): the symmetries below are exact on t. */
T cos_turns(T t)
{
    if (t > T(0.5))
        t = T(1) - t;
    T sign = T(1);
    if (t > T(0.25)) {
        t = T(0.5) - t;
        sign = T(-1);
    }
    if (t > T(0.125))
        return sign * sin_poly(TWO_PI * (T(0.25) - t));
    return sign * cos_poly(TWO_PI * t);
}

T box_muller(uint a0, uint a1, uint b0, uint b1)
{
    T u1 = uniform01(a0, a1, 1u), u2 = uniform01(b0, b1, 0u);
    return sqrt(T(-2) * kiln_log(u1)) * cos_turns(u2);
}

/* The first candidate of a block: f32 from (w.x, w.y), f64 from all four;
 * f32's second is (w.z, w.w). */
T normal_first(uvec4 w)
{
#if defined(T_F32)
    return box_muller(w.x, 0u, w.y, 0u);
#else
    return box_muller(w.x, w.y, w.z, w.w);
#endif
}

T truncated(uvec4 c, uvec2 key)
{
    T z = T(0);
    for (uint k = 0u; k < TRUNC_ATTEMPTS; k++) {
        c.z = k;
        uvec4 w = philox4x32_10(c, key);
        z = normal_first(w);
        if (abs(z) <= T(2))
            return z;
#if defined(T_F32)
        z = box_muller(w.z, 0u, w.w, 0u);
        if (abs(z) <= T(2))
            return z;
#endif
    }
    return clamp(z, T(-2), T(2));
}
#endif

void main()
{
    uvec2 key = uvec2(p.seed_lo, p.seed_hi);
    T a = T_FROM_BITS(p.a_lo, p.a_hi), b = T_FROM_BITS(p.b_lo, p.b_hi);
    uint off_lo = p.offset_lo, off_hi = p.offset_hi;
    if ((p.dist & DEVICE_OFFSET) != 0) {
        uint carry;
        off_lo = uaddCarry(off_lo, dev_.w[p.off_dev], carry);
        off_hi += dev_.w[p.off_dev + 1] + carry;
    }
    int dist = p.dist & DIST_MASK;
    KILN_FOR_EACH(i, p.n) {
        uint carry;
        uint lo = uaddCarry(off_lo, i, carry);
        uvec4 c = uvec4(lo, off_hi + carry, 0u, 0u);
        uvec4 w = philox4x32_10(c, key);
        T v = b;
        if (dist == DIST_BERNOULLI) {
            if (p.thr_hi != 0u || w.x < p.thr_lo)
                v = a;
        }
#if !defined(T_I32)
        else if (dist == DIST_UNIFORM) {
            precise T span = b - a;
            precise T x = a + span * uniform01(w.x, w.y, 0u);
            v = x < b ? x : a;
        } else {
            T z = dist == DIST_NORMAL ? normal_first(w) : truncated(c, key);
            v = a + b * z;
        }
#endif
        out_.d[p.off_out + kiln_offset(i, p.shape, p.stride_out)] = v;
    }
}
