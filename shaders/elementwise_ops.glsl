/*
 * elementwise_ops.glsl - one definition of each UNARY and BINARY op code
 * (lib/queue/kernels.h), shared by unary.comp, binary.comp and fused.comp
 * so that a fused chain computes exactly what the separate kernels do.
 * Include after common.glsl (T, T_ISNAN, T_NAN and the float functions).
 *
 * Unary: NEG ABS SQUARE RELU for every type; EXP LOG SQRT SIGMOID TANH for
 * float types only (the double versions are in common.glsl).  Binary: ADD
 * SUB MUL DIV MIN MAX POW EQ NE LT LE GT GE.  Integers wrap; DIV truncates,
 * x/0 = 0, INT_MIN/-1 = INT_MIN; POW is float only.  Floats: MIN/MAX give
 * NaN when either operand is NaN; comparisons give 1 or 0 in T.  Op codes
 * a type lacks give 0 (the op layer refuses them).
 *
 * `precise` keeps every product and sum rounded on its own: in a fused
 * chain the compiler would otherwise be free to contract a MUL and a
 * following ADD into one fma, which the separate kernels never do.
 */

T kiln_divide(T a, T b)
{
#if defined(T_I32)
    if (b == 0)
        return 0;
    if (a == KILN_INT_MIN && b == -1)
        return KILN_INT_MIN;
#endif
    return a / b;
}

T kiln_unary_apply(int op, T x)
{
    precise T v;
    switch (op) {
    case 0: v = -x; return v;
#if defined(T_I32)
    case 1: return x < 0 ? -x : x;
#else
    case 1: return abs(x);
#endif
    case 2: v = x * x; return v;
    case 3: return x > T(0) ? x : T(0);
#if !defined(T_I32)
    case 4: return kiln_exp(x);
    case 5: return kiln_log(x);
    case 6: return kiln_sqrt(x);
    case 7: return kiln_sigmoid(x);
    case 8: return kiln_tanh(x);
#endif
    }
    return T(0);
}

T kiln_binary_apply(int op, T a, T b)
{
    precise T v;
    switch (op) {
    case 0: v = a + b; return v;
    case 1: v = a - b; return v;
    case 2: v = a * b; return v;
    case 3: return kiln_divide(a, b);
#if defined(T_I32)
    case 4: return a < b ? a : b;
    case 5: return a > b ? a : b;
#else
    case 4: return T_ISNAN(a) || T_ISNAN(b) ? T_NAN : (a < b ? a : b);
    case 5: return T_ISNAN(a) || T_ISNAN(b) ? T_NAN : (a > b ? a : b);
    case 6: return kiln_pow(a, b);
#endif
    case 7: return T(a == b);
    case 8: return T(!(a == b)); /* NaN != NaN, as in C */
    case 9: return T(a < b);
    case 10: return T(a <= b);
    case 11: return T(a > b);
    case 12: return T(a >= b);
    }
    return T(0);
}
