/*
 * common.glsl - what every Kiln compute shader shares.
 *
 * Compiled once per dtype variant (tools/build/compile_shader.py): T is the
 * element type (float, int or double) with T_F32 / T_I32 / T_F64 defined,
 * and for convert also U / U_*.  Interface (lib/queue/queue.h): set 0,
 * binding i = whole block i; push constants = the kernel's 128-byte
 * parameter block (lib/queue/kernels.h), all 32-bit fields, element offsets
 * counted from the block start.
 * Specialization constants: 0, 1, 2 = workgroup size x, y, z;
 * 10..13 = the dispatch's consts[0..3] (kernel-specific tuning values).
 *
 * Also here: strided indexing, the float->int conversion rule, NaN
 * constants, and exp/log/expm1/tanh/sigmoid/pow for every float type.  GLSL
 * has exp and log only in single precision, so the double versions are
 * written out (range reduction + polynomial, within a few ulp of the C
 * library); the single-precision ones add the C edge cases (log of a
 * negative number, pow of a negative base) that GLSL leaves undefined.
 */

layout(local_size_x_id = 0, local_size_y_id = 1, local_size_z_id = 2) in;
layout(constant_id = 10) const int KILN_C0 = 1;
layout(constant_id = 11) const int KILN_C1 = 1;
layout(constant_id = 12) const int KILN_C2 = 1;
layout(constant_id = 13) const int KILN_C3 = 1;

#define KILN_KDIMS 6
#define KILN_INT_MIN int(0x80000000u)
#define KILN_INT_MAX 2147483647

/* Logical element i over a shape/stride pair, outermost dimension first
 * (kiln_cpu_strided_offset). */
int kiln_offset(uint i, int shape[KILN_KDIMS], int stride[KILN_KDIMS])
{
    int off = 0;
    for (int d = KILN_KDIMS - 1; d >= 0; d--) {
        uint s = uint(shape[d]);
        if (s == 1u) /* coalesced layouts leave most dims at 1 */
            continue;
        off += int(i % s) * stride[d];
        i /= s;
    }
    return off;
}

/* Is a coalesced layout one dense run (the core merges contiguous dims, so
 * every dense operand arrives as shape [1,...,1,n] with unit stride)? */
bool kiln_is_dense(int shape[KILN_KDIMS], int stride[KILN_KDIMS])
{
    for (int d = 0; d < KILN_KDIMS - 1; d++)
        if (shape[d] != 1)
            return false;
    return stride[KILN_KDIMS - 1] == 1 || shape[KILN_KDIMS - 1] == 1;
}

/* Grid-stride loop over n elements in x. */
#define KILN_FOR_EACH(i, n) \
    for (uint i = gl_GlobalInvocationID.x; i < uint(n); \
         i += gl_NumWorkGroups.x * gl_WorkGroupSize.x)

/* ---- the element type ---------------------------------------------- */

#if defined(T_F32)
#define T_FROM_BITS(lo, hi) uintBitsToFloat(lo)
#define T_NAN uintBitsToFloat(0x7fc00000u)
#define T_INF uintBitsToFloat(0x7f800000u)
#define T_ISNAN(x) isnan(x)
#define T_SIGNBIT(x) ((floatBitsToUint(x) >> 31) != 0u)
#elif defined(T_I32)
#define T_FROM_BITS(lo, hi) int(lo)
#define T_ISNAN(x) false
#else
#define T_FROM_BITS(lo, hi) packDouble2x32(uvec2(lo, hi))
#define T_NAN packDouble2x32(uvec2(0u, 0x7ff80000u))
#define T_INF packDouble2x32(uvec2(0u, 0x7ff00000u))
#define T_ISNAN(x) isnan(x)
#define T_SIGNBIT(x) ((unpackDouble2x32(x).y >> 31) != 0u)
#endif

/* Float to int32: NaN -> 0, saturate, truncate toward zero. */
int kiln_to_i32(float v)
{
    if (isnan(v))
        return 0;
    if (v >= 2147483648.0)
        return KILN_INT_MAX;
    if (v <= -2147483648.0)
        return KILN_INT_MIN;
    return int(v);
}

#if defined(T_F64) || defined(U_F64)
int kiln_to_i32(double v)
{
    if (isnan(v))
        return 0;
    if (v >= 2147483647.0LF)
        return KILN_INT_MAX;
    if (v <= -2147483648.0LF)
        return KILN_INT_MIN;
    return int(v);
}
#endif

/* ---- transcendental functions in T --------------------------------- */
/*
 * GLSL has exp and log only in single precision, and even there allows
 * errors of 3 + 2|x| ulp, so both float types get their own: range
 * reduction to a small interval, then a Taylor polynomial.  pow carries
 * log|x| in two words (hi + lo) and y * log|x| as an exact product, so a
 * large exponent does not magnify the rounding of the logarithm.  Exact
 * products use Dekker's splitting rather than fma (Vulkan does not promise
 * fma is fused); `precise` stops compilers from contracting or
 * reassociating those sequences.
 */
#if defined(T_F64)
double kiln_pow2(int e) /* 2^e, -1022 <= e <= 1023 */
{
    return packDouble2x32(uvec2(0u, uint(e + 1023) << 20));
}

/* m in [sqrt(1/2), sqrt(2)) and e with x = m 2^e, for finite x > 0. */
double kiln_frexp_sqrt2(double x, out int e)
{
    e = 0;
    if (x < 2.2250738585072014e-308LF) { /* subnormal: scale by 2^54 */
        x *= 18014398509481984.0LF;
        e = -54;
    }
    uvec2 w = unpackDouble2x32(x);
    e += int((w.y >> 20) & 0x7ffu) - 1023;
    double m = packDouble2x32(uvec2(w.x, (w.y & 0x000fffffu) | 0x3ff00000u));
    if (m > 1.4142135623730951LF) {
        m *= 0.5LF;
        e += 1;
    }
    return m;
}

/* e^r for |r| <= ln2/2 (+ a little): Taylor series to r^14. */
double kiln_exp_poly(double r)
{
    double p = 1.0LF / 87178291200.0LF;
    p = p * r + 1.0LF / 6227020800.0LF;
    p = p * r + 1.0LF / 479001600.0LF;
    p = p * r + 1.0LF / 39916800.0LF;
    p = p * r + 1.0LF / 3628800.0LF;
    p = p * r + 1.0LF / 362880.0LF;
    p = p * r + 1.0LF / 40320.0LF;
    p = p * r + 1.0LF / 5040.0LF;
    p = p * r + 1.0LF / 720.0LF;
    p = p * r + 1.0LF / 120.0LF;
    p = p * r + 1.0LF / 24.0LF;
    p = p * r + 1.0LF / 6.0LF;
    p = p * r + 0.5LF;
    p = p * r + 1.0LF;
    return p * r + 1.0LF;
}

/* (e^x - 1) / x for |x| < 0.5: Taylor series to x^16/17!. */
double kiln_expm1_poly(double x)
{
    double p = 1.0LF / 355687428096000.0LF;
    p = p * x + 1.0LF / 20922789888000.0LF;
    p = p * x + 1.0LF / 1307674368000.0LF;
    p = p * x + 1.0LF / 87178291200.0LF;
    p = p * x + 1.0LF / 6227020800.0LF;
    p = p * x + 1.0LF / 479001600.0LF;
    p = p * x + 1.0LF / 39916800.0LF;
    p = p * x + 1.0LF / 3628800.0LF;
    p = p * x + 1.0LF / 362880.0LF;
    p = p * x + 1.0LF / 40320.0LF;
    p = p * x + 1.0LF / 5040.0LF;
    p = p * x + 1.0LF / 720.0LF;
    p = p * x + 1.0LF / 120.0LF;
    p = p * x + 1.0LF / 24.0LF;
    p = p * x + 1.0LF / 6.0LF;
    p = p * x + 0.5LF;
    return p * x + 1.0LF;
}

/* 2 atanh(f) / (2f) - 1 = s/3 + s^2/5 + ... for s = f^2 <= 0.0295. */
double kiln_atanh_tail(double s)
{
    double p = 1.0LF / 23.0LF;
    p = p * s + 1.0LF / 21.0LF;
    p = p * s + 1.0LF / 19.0LF;
    p = p * s + 1.0LF / 17.0LF;
    p = p * s + 1.0LF / 15.0LF;
    p = p * s + 1.0LF / 13.0LF;
    p = p * s + 1.0LF / 11.0LF;
    p = p * s + 1.0LF / 9.0LF;
    p = p * s + 1.0LF / 7.0LF;
    p = p * s + 1.0LF / 5.0LF;
    p = p * s + 1.0LF / 3.0LF;
    return p * s;
}

const double KILN_LN2_HI = 6.93147180369123816490e-01LF; /* 32 bits */
const double KILN_LN2_LO = 1.90821492927058770002e-10LF;
const double KILN_LOG2E = 1.4426950408889634LF;
const double KILN_EXP_MAX = 709.782712893384LF;
const double KILN_EXP_MIN = -745.1332191019412LF;
const double KILN_SPLIT = 134217729.0LF; /* 2^27 + 1 */
const double KILN_POW_BIG = 1500.0LF; /* |y log x| beyond: 0 or inf */
const double KILN_TANH_ONE = 22.0LF;  /* tanh(22) rounds to 1 */
const double KILN_ODD_LIMIT = 9007199254740992.0LF; /* 2^53 */
#elif defined(T_F32)
float kiln_pow2(int e) /* 2^e, -126 <= e <= 127 */
{
    return uintBitsToFloat(uint(e + 127) << 23);
}

float kiln_frexp_sqrt2(float x, out int e)
{
    e = 0;
    if (x < 1.17549435e-38) { /* subnormal: scale by 2^24 */
        x *= 16777216.0;
        e = -24;
    }
    uint w = floatBitsToUint(x);
    e += int((w >> 23) & 0xffu) - 127;
    float m = uintBitsToFloat((w & 0x007fffffu) | 0x3f800000u);
    if (m > 1.41421356) {
        m *= 0.5;
        e += 1;
    }
    return m;
}

float kiln_exp_poly(float r) /* Taylor series to r^8 */
{
    float p = 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    return p * r + 1.0;
}

float kiln_expm1_poly(float x) /* to x^9/9! */
{
    float p = 1.0 / 362880.0;
    p = p * x + 1.0 / 40320.0;
    p = p * x + 1.0 / 5040.0;
    p = p * x + 1.0 / 720.0;
    p = p * x + 1.0 / 120.0;
    p = p * x + 1.0 / 24.0;
    p = p * x + 1.0 / 6.0;
    p = p * x + 0.5;
    return p * x + 1.0;
}

float kiln_atanh_tail(float s)
{
    float p = 1.0 / 13.0;
    p = p * s + 1.0 / 11.0;
    p = p * s + 1.0 / 9.0;
    p = p * s + 1.0 / 7.0;
    p = p * s + 1.0 / 5.0;
    p = p * s + 1.0 / 3.0;
    return p * s;
}

const float KILN_LN2_HI = 0.693145751953125;  /* 16 bits */
const float KILN_LN2_LO = 1.42860682030941723212e-06;
const float KILN_LOG2E = 1.44269504;
const float KILN_EXP_MAX = 88.7228390;
const float KILN_EXP_MIN = -103.972084;
const float KILN_SPLIT = 4097.0; /* 2^12 + 1 */
const float KILN_POW_BIG = 200.0;
const float KILN_TANH_ONE = 10.0;     /* tanh(10) rounds to 1 */
const float KILN_ODD_LIMIT = 16777216.0; /* 2^24 */
#endif

#if defined(T_F32) || defined(T_F64)
/* s + e = a + b exactly. */
void kiln_two_sum(T a, T b, out T s, out T e)
{
    precise T sum = a + b;
    precise T bb = sum - a;
    precise T err = (a - (sum - bb)) + (b - bb);
    s = sum;
    e = err;
}

/* p + e = a * b exactly (Dekker), for |a|, |b| far from overflow. */
void kiln_two_prod(T a, T b, out T p, out T e)
{
    precise T ca = KILN_SPLIT * a;
    precise T ah = ca - (ca - a);
    precise T al = a - ah;
    precise T cb = KILN_SPLIT * b;
    precise T bh = cb - (cb - b);
    precise T bl = b - bh;
    precise T prod = a * b;
    precise T err = ((ah * bh - prod) + ah * bl + al * bh) + al * bl;
    p = prod;
    e = err;
}

/* x 2^n in two steps, so results near overflow and subnormal ones come
 * out right (ldexp is undefined outside the normal range). */
T kiln_scale2(T x, int n)
{
    int n1 = n / 2;
    return x * kiln_pow2(n1) * kiln_pow2(n - n1);
}

/* e^(hi + lo) for |lo| << |hi|: hi + lo = n ln2 + r. */
T kiln_exp_w(T hi, T lo)
{
    if (isnan(hi))
        return hi;
    if (hi > KILN_EXP_MAX)
        return T_INF;
    if (hi < KILN_EXP_MIN)
        return T(0);
    T n = roundEven(hi * KILN_LOG2E);
    precise T r = (hi - n * KILN_LN2_HI) - n * KILN_LN2_LO + lo;
    return kiln_scale2(kiln_exp_poly(r), int(n));
}

T kiln_exp(T x) { return kiln_exp_w(x, T(0)); }

/* log x = hi + lo for finite x > 0: x = m 2^e, log m = 2 atanh(f) with
 * f = (m - 1) / (m + 1) kept in two words. */
void kiln_log_w(T x, out T hi, out T lo)
{
    int e;
    T m = kiln_frexp_sqrt2(x, e);
    precise T num = m - T(1); /* exact */
    T dh, dl, ph, pl;
    kiln_two_sum(m, T(1), dh, dl);
    precise T f = num / dh;
    kiln_two_prod(f, dh, ph, pl);
    precise T fl = (((num - ph) - pl) - f * dl) / dh;
    T tail = kiln_atanh_tail(f * f);
    T de = T(e);
    T h1, l1;
    kiln_two_sum(de * KILN_LN2_HI, T(2) * f, h1, l1);
    precise T rest = l1 + (de * KILN_LN2_LO + (T(2) * fl + T(2) * f * tail));
    kiln_two_sum(h1, rest, hi, lo);
}

T kiln_log(T x)
{
    if (isnan(x))
        return x;
    if (x < T(0))
        return T_NAN;
    if (x == T(0))
        return -T_INF;
    if (isinf(x))
        return x;
    T hi, lo;
    kiln_log_w(x, hi, lo);
    return hi + lo;
}

/* e^x - 1 without cancellation near 0. */
T kiln_expm1(T x)
{
    if (abs(x) < T(0.5))
        return x * kiln_expm1_poly(x);
    return kiln_exp(x) - T(1);
}

/* |x|^y for finite nonzero |x| and finite y. */
T kiln_pow_core(T ax, T y)
{
    T lh, ll, th, tl;
    kiln_log_w(ax, lh, ll);
    T t = y * lh;
    if (abs(t) > KILN_POW_BIG) /* far outside the range: avoid overflow */
        return t > T(0) ? T_INF : T(0);
    kiln_two_prod(y, lh, th, tl);
    return kiln_exp_w(th, tl + y * ll);
}
#endif

#if defined(T_F32) || defined(T_F64)
T kiln_sqrt(T x)
{
    if (x < T(0.0))
        return T_NAN; /* GLSL leaves it undefined */
    return sqrt(x);
}

/* 1 / (1 + e^-x), never e^x of a large positive x. */
T kiln_sigmoid(T x)
{
    if (x >= T(0.0))
        return T(1.0) / (T(1.0) + kiln_exp(-x));
    T e = kiln_exp(x);
    return e / (T(1.0) + e);
}

/* tanh |x| = t / (t + 2) with t = e^(2|x|) - 1: no overflow, no
 * cancellation near 0. */
T kiln_tanh(T x)
{
    if (isnan(x) || x == T(0.0))
        return x;
    T ax = abs(x);
    T r = T(1.0);
    if (ax < KILN_TANH_ONE) {
        T t = kiln_expm1(T(2.0) * ax);
        r = t / (t + T(2.0));
    }
    return x < T(0.0) ? -r : r;
}

/* C99 pow, Annex F edge cases included. */
T kiln_pow(T x, T y)
{
    if (y == T(0.0) || x == T(1.0))
        return T(1.0);
    if (isnan(x) || isnan(y))
        return T_NAN;
    T ay = abs(y);
    bool integral = floor(y) == y; /* true for +-inf too */
    bool odd = integral && ay < KILN_ODD_LIMIT &&
               floor(ay * T(0.5)) * T(2.0) != ay;
    if (x < T(0.0) && !integral && !isinf(x)) /* finite base only */
        return T_NAN;
    T ax = abs(x);
    T r;
    if (isinf(y)) {
        if (ax == T(1.0))
            return T(1.0);
        r = (ax < T(1.0)) == (y > T(0.0)) ? T(0.0) : T_INF;
        return r; /* never negative: an infinite y is even */
    }
    if (ax == T(0.0))
        r = y < T(0.0) ? T_INF : T(0.0);
    else if (isinf(ax))
        r = y < T(0.0) ? T(0.0) : T_INF;
    else
        r = kiln_pow_core(ax, y);
    /* A negative base (-0.0 included) with an odd exponent keeps its sign. */
    return T_SIGNBIT(x) && odd ? -r : r;
}
#endif
