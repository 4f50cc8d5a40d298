/*
 * fused_testutil.h - what test_fused.c and test_fused_reduce.c share: the
 * eager oracle of a fused program (one eager op per instruction), random
 * programs (exact and smooth, see test_fused.c) and random broadcast /
 * strided / aliased input layouts, and the element comparison.
 */
#ifndef KILN_FUSED_TESTUTIL_H
#define KILN_FUSED_TESTUTIL_H

#include <float.h>

#include "op_check.h"
#include "ops/ops.h"

static harness_rng rng = {20270};
static kiln_context *dev, *ref;

#define CALL "test_fused"
#define MAX_REGS (KILN_FUSED_MAX_INPUTS + KILN_FUSED_MAX_INSTRS)

static uint32_t unary(int op, int a)
{
    return kiln_fused_instr(KILN_FUSED_UNARY + op, a, 0, 0);
}
static uint32_t binary(int op, int a, int b)
{
    return kiln_fused_instr(KILN_FUSED_BINARY + op, a, b, 0);
}
static uint32_t select3(int c, int a, int b)
{
    return kiln_fused_instr(KILN_FUSED_SELECT, c, a, b);
}

/* ---- the eager oracle -------------------------------------------------- */

static kiln_tensor *(*const unary_fns[KILN_UNARY_COUNT])(kiln_tensor *) = {
    kiln_neg, kiln_abs,     kiln_square,  kiln_relu, kiln_exp,
    kiln_log, kiln_sqrt,    kiln_sigmoid, kiln_tanh};
static kiln_tensor *(*const arith_fns[KILN_BINARY_EQ])(kiln_tensor *,
                                                       kiln_tensor *) = {
    kiln_add, kiln_sub, kiln_mul, kiln_div, kiln_minimum, kiln_maximum,
    kiln_pow};

/* @p run as one eager op per instruction on @in's context; the last
 * register (a new tensor of the broadcast shape of what it depends on). */
static kiln_tensor *eager(const kiln_fused_program *p, kiln_tensor *const *in)
{
    kiln_tensor *r[MAX_REGS] = {0};
    for (int k = 0; k < p->ninputs; k++)
        r[k] = in[k];
    for (int j = 0; j < p->ninstr; j++) {
        uint32_t w = p->instr[j];
        int code = (int)(w & 0xff);
        kiln_tensor *a = r[(w >> 8) & 0xff], *b = r[(w >> 16) & 0xff],
                    *c = r[w >> 24];
        kiln_tensor *t;
        if (code < KILN_FUSED_BINARY)
            t = unary_fns[code](a);
        else if (code < KILN_FUSED_BINARY + KILN_BINARY_EQ)
            t = arith_fns[code - KILN_FUSED_BINARY](a, b);
        else if (code < KILN_FUSED_SELECT)
            t = kiln_compare(a, b, (kiln_compare_op)(code - KILN_FUSED_BINARY -
                                                     KILN_BINARY_EQ));
        else
            t = kiln_select(a, b, c);
        r[p->ninputs + j] = t;
    }
    int last = p->ninputs + p->ninstr - 1;
    for (int j = p->ninputs; j < last; j++)
        kiln_tensor_free(r[j]);
    return r[last];
}

/* ---- random programs ---------------------------------------------------- */

enum kind { EXACT, SMOOTH };

/* A register below @written, mostly the newest, so that most instructions
 * feed the output (random operands alone leave much of a program dead). */
static int operand(int written)
{
    return harness_int(&rng, 0, 2) ? written - 1
                                   : harness_int(&rng, 0, written - 1);
}

/* One exact instruction reading registers below @written. */
static uint32_t random_exact(kiln_dtype t, int written)
{
    static const int unaries[] = {KILN_UNARY_NEG, KILN_UNARY_ABS,
                                  KILN_UNARY_SQUARE, KILN_UNARY_RELU};
    static const int binaries[] = {
        KILN_BINARY_ADD, KILN_BINARY_SUB, KILN_BINARY_MUL, KILN_BINARY_MIN,
        KILN_BINARY_MAX, KILN_BINARY_EQ,  KILN_BINARY_NE,  KILN_BINARY_LT,
        KILN_BINARY_LE,  KILN_BINARY_GT,  KILN_BINARY_GE,  KILN_BINARY_DIV};
    int a = operand(written), b = operand(written), c = operand(written);
    int pick = harness_int(&rng, 0, 16);
    if (pick < 4)
        return unary(unaries[pick], a);
    if (pick == 16)
        return select3(a, b, c);
    /* Integer division is exact (and x / 0 = 0); float division is
     * not exactly rounded on every device. */
    int nbin = t == KILN_I32 ? 12 : 11;
    return binary(binaries[(pick - 4) % nbin], a, b);
}

typedef struct range {
    double lo, hi;
} range;

static double dmin(double a, double b) { return a < b ? a : b; }
static double dmax(double a, double b) { return a > b ? a : b; }

/* One instruction that keeps every value in [0.05, 20] where each op is
 * well conditioned, given the ranges @r of the registers below @written;
 * stores the result's range in r[written]. */
static uint32_t random_smooth(int written, range *r)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        int a = operand(written), b = harness_int(&rng, 0, written - 1);
        range x = r[a], y = r[b], z = {0, 0};
        uint32_t w = 0;
        switch (harness_int(&rng, 0, 13)) {
        case 0:
            z = (range){x.lo + y.lo, x.hi + y.hi};
            w = binary(KILN_BINARY_ADD, a, b);
            break;
        case 1: /* no cancellation: |a| + |b| <= 4 |a - b| */
            if (x.lo - y.hi < 0.05 || x.hi + y.hi > 4 * (x.lo - y.hi))
                continue;
            z = (range){x.lo - y.hi, x.hi - y.lo};
            w = binary(KILN_BINARY_SUB, a, b);
            break;
        case 2:
            z = (range){x.lo * y.lo, x.hi * y.hi};
            w = binary(KILN_BINARY_MUL, a, b);
            break;
        case 3:
            z = (range){x.lo / y.hi, x.hi / y.lo};
            w = binary(KILN_BINARY_DIV, a, b);
            break;
        case 4:
            z = (range){dmin(x.lo, y.lo), dmin(x.hi, y.hi)};
            w = binary(KILN_BINARY_MIN, a, b);
            break;
        case 5:
            z = (range){dmax(x.lo, y.lo), dmax(x.hi, y.hi)};
            w = binary(KILN_BINARY_MAX, a, b);
            break;
        case 6: { /* monotonic in each operand: the corners bound it */
            if (y.hi > 3)
                continue;
            double c[4] = {pow(x.lo, y.lo), pow(x.lo, y.hi), pow(x.hi, y.lo),
                           pow(x.hi, y.hi)};
            z = (range){dmin(dmin(c[0], c[1]), dmin(c[2], c[3])),
                        dmax(dmax(c[0], c[1]), dmax(c[2], c[3]))};
            w = binary(KILN_BINARY_POW, a, b);
            break;
        }
        case 7:
            z = (range){sqrt(x.lo), sqrt(x.hi)};
            w = unary(KILN_UNARY_SQRT, a);
            break;
        case 8:
            z = (range){exp(x.lo), exp(x.hi)};
            w = unary(KILN_UNARY_EXP, a);
            break;
        case 9: /* away from log(1) = 0 */
            if (x.lo < 1.1)
                continue;
            z = (range){log(x.lo), log(x.hi)};
            w = unary(KILN_UNARY_LOG, a);
            break;
        case 10:
            z = (range){1 / (1 + exp(-x.lo)), 1 / (1 + exp(-x.hi))};
            w = unary(KILN_UNARY_SIGMOID, a);
            break;
        case 11:
            z = (range){tanh(x.lo), tanh(x.hi)};
            w = unary(KILN_UNARY_TANH, a);
            break;
        case 12:
            z = (range){x.lo * x.lo, x.hi * x.hi};
            w = unary(KILN_UNARY_SQUARE, a);
            break;
        default: { /* the condition is positive: always b */
            int c = harness_int(&rng, 0, written - 1);
            z = y;
            w = select3(a, b, c);
            break;
        }
        }
        if (z.lo < 0.05 || z.hi > 20)
            continue;
        r[written] = z;
        return w;
    }
    r[written] = (range){sqrt(r[0].lo), sqrt(r[0].hi)};
    return unary(KILN_UNARY_SQRT, 0);
}

static kiln_fused_program random_program(kiln_dtype t, enum kind kind)
{
    kiln_fused_program p = {.ninputs = harness_int(&rng, 1, 6),
                            .ninstr = harness_int(&rng, 1, 16)};
    range r[MAX_REGS];
    for (int k = 0; k < p.ninputs; k++)
        r[k] = (range){0.5, 2};
    for (int j = 0; j < p.ninstr; j++)
        p.instr[j] = kind == EXACT ? random_exact(t, p.ninputs + j)
                                   : random_smooth(p.ninputs + j, r);
    return p;
}

/* ---- random layouts ----------------------------------------------------- */

typedef struct layout_case {
    int ndim;
    int64_t shape[KILN_MAX_DIMS];
    int ninputs;
    op_input in[KILN_FUSED_MAX_INPUTS];
    int alias[KILN_FUSED_MAX_INPUTS]; /* input k is input alias[k]'s tensor */
} layout_case;

static layout_case random_layout(kiln_dtype t, enum kind kind, int ninputs)
{
    layout_case lc = {.ndim = harness_int(&rng, 0, 4), .ninputs = ninputs};
    for (int d = 0; d < lc.ndim; d++)
        lc.shape[d] = harness_int(&rng, 0, 2) == 0 ? 1
                                                  : harness_int(&rng, 2, 7);
    for (int k = 0; k < ninputs; k++) {
        lc.alias[k] = k;
        if (k > 0 && harness_int(&rng, 0, 4) == 0) {
            lc.alias[k] = harness_int(&rng, 0, k - 1);
            continue;
        }
        /* Drop leading dimensions or keep size 1 along some: broadcast. */
        int drop = harness_int(&rng, 0, 3) == 0 ? harness_int(&rng, 0, lc.ndim)
                                                : 0;
        int nd = lc.ndim - drop;
        int64_t s[KILN_MAX_DIMS];
        for (int d = 0; d < nd; d++)
            s[d] = harness_int(&rng, 0, 3) == 0 ? 1 : lc.shape[drop + d];
        int v = harness_int(&rng, 0, 4);
        enum view_kind view = v == 3 ? VIEW_TRANSPOSED
                            : v == 4 ? VIEW_STRIDED : VIEW_PLAIN;
        double lo = kind == SMOOTH ? 0.5 : t == KILN_I32 ? -20 : -3;
        double hi = kind == SMOOTH ? 2 : t == KILN_I32 ? 20 : 3;
        lc.in[k] = op_random_input(&rng, t, nd, s, view, lo, hi);
        if (kind == EXACT && t != KILN_I32) /* multiples of 0.5 */
            for (int64_t i = 0; i < base_numel(&lc.in[k]); i++)
                lc.in[k].data[i] = floor(lc.in[k].data[i] * 2) / 2;
    }
    return lc;
}

static void layout_free(layout_case *lc)
{
    for (int k = 0; k < lc->ninputs; k++)
        if (lc->alias[k] == k)
            free(lc->in[k].data);
}

/* The case's inputs on @ctx (aliases are the same tensor). */
static void make_inputs(kiln_context *ctx, const layout_case *lc,
                        kiln_tensor **out)
{
    for (int k = 0; k < lc->ninputs; k++)
        out[k] = lc->alias[k] == k ? make_input(ctx, &lc->in[k], 0)
                                   : out[lc->alias[k]];
}

static void free_inputs(const layout_case *lc, kiln_tensor **ts)
{
    for (int k = 0; k < lc->ninputs; k++)
        if (lc->alias[k] == k)
            kiln_tensor_free(ts[k]);
}

/* ---- comparison --------------------------------------------------------- */

/* |got - want| <= tol.abs + tol.rel |want| per element; NaN only where the
 * reference has NaN.  Updates @st; returns 1 when all pass. */
static int compare(op_stats *st, const char *name, const double *got,
                   const double *want, int64_t n, tolerance tol)
{
    for (int64_t i = 0; i < n; i++) {
        if (got[i] == want[i])
            continue;
        if (isnan(got[i]) || isnan(want[i])) {
            if (isnan(got[i]) && isnan(want[i]))
                continue;
        } else {
            double err = fabs(got[i] - want[i]);
            double allowed = tol.abs + tol.rel * fabs(want[i]);
            if (err <= allowed) {
                if (allowed > 0 && err / allowed > st->max_err)
                    st->max_err = err / allowed;
                continue;
            }
        }
        harness_fail("%s: element %lld: got %.17g, want %.17g", name,
                     (long long)i, got[i], want[i]);
        return 0;
    }
    return 1;
}

static void check_contexts(const char *name, int *ok)
{
    if (kiln_check_guards(dev) != KILN_OK || kiln_check_guards(ref) != KILN_OK) {
        harness_fail("%s: guard bytes damaged: %s %s", name,
                     kiln_error_message(dev), kiln_error_message(ref));
        kiln_clear_error(dev);
        kiln_clear_error(ref);
        *ok = 0;
    }
    if (kiln_validation_message_count(dev) != 0) {
        harness_fail("%s: Vulkan validation: %s", name,
                     kiln_error_message(dev));
        *ok = 0;
    }
}

/* A random case's start: counted, its inputs made on both contexts. */
static void start_case(op_stats *st, const layout_case *lc, kiln_tensor **din,
                       kiln_tensor **rin)
{
    st->cases++;
    harness_checks++;
    make_inputs(dev, lc, din);
    make_inputs(ref, lc, rin);
}

/* A random case's end: its inputs freed on both contexts, the guards and
 * the validation layer checked, a failure counted. */
static void finish_case(op_stats *st, const char *name, const layout_case *lc,
                        kiln_tensor **din, kiln_tensor **rin, int ok)
{
    free_inputs(lc, din);
    free_inputs(lc, rin);
    check_contexts(name, &ok);
    if (!ok)
        st->failed++;
}

/* The device under test (--device) and the reference, seeded (--seed). */
static void open_contexts(int argc, char **argv)
{
    const char *spec = harness_device(argc, argv);
    harness_seed(argc, argv, &rng);
    dev = harness_open(spec, 256);
    ref = harness_open("reference", 256);
}

#endif
