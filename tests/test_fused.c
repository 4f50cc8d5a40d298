/*
 * test_fused.c - the fused elementwise kernel (KILN_K_FUSED) through
 * kiln__fused / kiln__fused_into on the device under test, against the same
 * computation done with the eager ops (kiln_add, kiln_relu, kiln_select, ...)
 * on the C reference.
 *
 * Random programs (seeded; 1..16 instructions over 1..6 inputs), each run on
 * several random layouts: broadcast shapes, transposed and strided views,
 * the same tensor as two inputs.  Two kinds of program:
 *   - exact: ops whose result is exactly rounded everywhere (neg, abs,
 *     square, relu, add, sub, mul, minimum, maximum, comparisons, select;
 *     integer div too) on values that are multiples of 0.5, so comparisons
 *     meet equal operands.  Compared exactly (f32 allows an FLT_MIN absolute
 *     difference, for devices that flush subnormals).
 *   - smooth (f32, f64): every op including div, pow, exp, log, sqrt,
 *     sigmoid and tanh, built so that every register stays in [0.05, 20]
 *     and each op is well conditioned there (interval arithmetic on the
 *     generator's side): the device's few-ulp differences from the
 *     reference then stay small through the chain, and a tolerance of
 *     1e-6 relative (f32) / 1e-13 (f64) is meaningful.
 * On the reference, the fused result must equal the eager chain bit for bit
 * (it reuses the same scalar functions).  Also: one build per program (the
 * same program again builds nothing), malformed programs give errors, a
 * 0-element shape, a layout needing 4 dimensions is refused, in-place and
 * overlapping outputs, and a recorded fused kernel replayed.
 *
 * usage: test_fused --device SPEC [--seed N]
 */
#include "fused_testutil.h"

/* ---- random cases ------------------------------------------------------- */

static int refused_layouts;

/* Runs @p over @lc fused on the device and on the reference and eagerly on
 * the reference; the reference's fused result must equal the eager one
 * bit for bit, the device's within @tol. */
static void run_case(op_stats *st, const char *name,
                     const kiln_fused_program *p, kiln_dtype t,
                     const layout_case *lc, tolerance tol)
{
    kiln_tensor *din[KILN_FUSED_MAX_INPUTS], *rin[KILN_FUSED_MAX_INPUTS];
    int ok = 1;
    start_case(st, lc, din, rin);
    int fits = kiln__fused_fits(p->ninputs, rin, lc->ndim, lc->shape);
    if (fits != kiln__fused_fits(p->ninputs, din, lc->ndim, lc->shape)) {
        harness_fail("%s: kiln__fused_fits differs between the contexts",
                     name);
        ok = 0;
    } else if (!fits) {
        /* Refused with a message, and nothing else breaks. */
        kiln_tensor *out = kiln__fused(dev, CALL, p, t, din, lc->ndim,
                                       lc->shape);
        if (out || kiln_status_of(dev) != KILN_ERROR_UNSUPPORTED) {
            harness_fail("%s: a layout kiln__fused_fits rejects was not "
                         "refused (%s)", name, kiln_error_message(dev));
            ok = 0;
        }
        kiln_tensor_free(out);
        kiln_clear_error(dev);
        refused_layouts++;
    } else {
        kiln_tensor *fd = kiln__fused(dev, CALL, p, t, din, lc->ndim,
                                      lc->shape);
        kiln_tensor *fr = kiln__fused(ref, CALL, p, t, rin, lc->ndim,
                                      lc->shape);
        kiln_tensor *er = eager(p, rin);
        kiln_tensor *eb = kiln_broadcast_to(er, lc->ndim, lc->shape);
        int64_t nd = -1, nr = -1, ne = -1;
        double *d = fd ? read_doubles(fd, &nd) : NULL;
        double *r = fr ? read_doubles(fr, &nr) : NULL;
        double *e = eb ? read_doubles(eb, &ne) : NULL;
        if (!d || !r || !e) {
            harness_fail("%s: failed: device: %s; reference: %s", name,
                         kiln_error_message(dev), kiln_error_message(ref));
            kiln_clear_error(dev);
            kiln_clear_error(ref);
            ok = 0;
        } else if (nd != ne || nr != ne ||
                   ne != shape_numel(lc->ndim, lc->shape)) {
            harness_fail("%s: %lld / %lld / %lld elements", name,
                         (long long)nd, (long long)nr, (long long)ne);
            ok = 0;
        } else {
            char what[160];
            snprintf(what, sizeof what, "%s (reference, fused vs eager)",
                     name);
            ok = compare(st, what, r, e, ne, (tolerance){0, 0, 0});
            snprintf(what, sizeof what, "%s (device)", name);
            ok = compare(st, what, d, e, ne, tol) && ok;
        }
        free(d);
        free(r);
        free(e);
        kiln_tensor_free(fd);
        kiln_tensor_free(fr);
        kiln_tensor_free(eb);
        kiln_tensor_free(er);
    }
    finish_case(st, name, lc, din, rin, ok);
}

static int device_has_f64(void)
{
    return kiln_context_device(dev)->fp64;
}

/* @programs random programs of @kind, each over @layouts random layouts. */
static void test_random(kiln_dtype t, enum kind kind, int programs,
                        int layouts)
{
    op_stats st = {0};
    tolerance tol = {0, 0, 0};
    if (t == KILN_F32)
        tol = kind == EXACT ? (tolerance){FLT_MIN, 0, 0}
                            : (tolerance){1e-7, 1e-6, 0};
    else if (t == KILN_F64)
        tol = kind == EXACT ? (tolerance){DBL_MIN, 0, 0}
                            : (tolerance){1e-14, 1e-13, 0};
    refused_layouts = 0;
    for (int i = 0; i < programs; i++) {
        kiln_fused_program p = random_program(t, kind);
        for (int l = 0; l < layouts; l++) {
            layout_case lc = random_layout(t, kind, p.ninputs);
            char name[128];
            snprintf(name, sizeof name, "%s %s program %d (%d inputs, %d "
                     "instructions) layout %d", kind == EXACT ? "exact"
                                                               : "smooth",
                     kiln_dtype_name(t), i, p.ninputs, p.ninstr, l);
            run_case(&st, name, &p, t, &lc, tol);
            layout_free(&lc);
        }
    }
    char group[64];
    snprintf(group, sizeof group, "%s %s (%d refused layouts)",
             kind == EXACT ? "exact" : "smooth", kiln_dtype_name(t),
             refused_layouts);
    report(group, &st);
    CHECK(refused_layouts * 2 < st.cases, "%s: most layouts were refused",
          group);
}

/* Every op code the dtype has, each feeding the output: programs of up to
 * 8 ops over 3 inputs, op k's result added into an accumulator (SELECT's
 * condition is the comparison just before it). */
static void test_every_op(kiln_dtype t)
{
    int codes[KILN_UNARY_COUNT + KILN_BINARY_COUNT + 1], ncodes = 0;
    for (int op = 0; op < KILN_UNARY_COUNT; op++)
        if (op < KILN_UNARY_FIRST_FLOAT_ONLY || t != KILN_I32)
            codes[ncodes++] = KILN_FUSED_UNARY + op;
    for (int op = 0; op < KILN_BINARY_COUNT; op++)
        if (op != KILN_BINARY_POW || t != KILN_I32)
            codes[ncodes++] = KILN_FUSED_BINARY + op;
    codes[ncodes++] = KILN_FUSED_SELECT; /* after GE */
    tolerance tol = t == KILN_I32   ? (tolerance){0, 0, 0}
                  : t == KILN_F32 ? (tolerance){1e-5, 1e-6, 0}
                                  : (tolerance){1e-13, 1e-13, 0};
    op_stats st = {0};
    for (int first = 0; first < ncodes; first += 8) {
        kiln_fused_program p = {.ninputs = 3};
        int acc = -1, last_op = 0;
        for (int k = first; k < ncodes && k < first + 8; k++) {
            int a = k % 3, b = (k + 1) % 3, code = codes[k];
            int r = p.ninputs + p.ninstr;
            p.instr[p.ninstr++] =
                code == KILN_FUSED_SELECT
                    ? select3(last_op, a, b) /* GE's result */
                    : kiln_fused_instr(code, a, code >= KILN_FUSED_BINARY
                                                    ? b : 0, 0);
            last_op = r;
            if (acc >= 0) {
                p.instr[p.ninstr++] = binary(KILN_BINARY_ADD, acc, r);
                r++;
            }
            acc = r;
        }
        /* Full, broadcast along the rows, transposed. */
        layout_case lc = {.ndim = 2, .shape = {4, 5}, .ninputs = 3,
                          .alias = {0, 1, 2}};
        double lo = t == KILN_I32 ? -20 : 0.5, hi = t == KILN_I32 ? 20 : 2;
        lc.in[0] = op_random_input(&rng, t, 2, lc.shape, VIEW_PLAIN, lo, hi);
        lc.in[1] = op_random_input(&rng, t, 1, lc.shape + 1, VIEW_STRIDED,
                                   lo, hi);
        lc.in[2] = op_random_input(&rng, t, 2, lc.shape, VIEW_TRANSPOSED, lo,
                                   hi);
        char name[96];
        snprintf(name, sizeof name, "every op %s, ops %d..%d",
                 kiln_dtype_name(t), first, first + 7);
        run_case(&st, name, &p, t, &lc, tol);
        layout_free(&lc);
    }
    char group[64];
    snprintf(group, sizeof group, "every op %s", kiln_dtype_name(t));
    report(group, &st);
}

/* ---- builds ------------------------------------------------------------- */

static uint64_t builds(void)
{
    kiln_context_stats s;
    kiln_context_get_stats(dev, &s);
    return s.programs_built + s.programs_cached;
}

static kiln_tensor *vector(kiln_context *ctx, int64_t n, float scale)
{
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++)
        v[i] = scale * (float)(i % 7) - 2;
    kiln_tensor *t = kiln_tensor_from_data(ctx, KILN_F32, 1, &n, v,
                                           (size_t)n * sizeof *v);
    free(v);
    return t;
}

/* The same program twice builds once; another program builds again (on a
 * backend that builds at all). */
static void test_builds_once(void)
{
    /* relu(a * b) - b, an unlikely random program. */
    kiln_fused_program p = {2, 3, {binary(KILN_BINARY_MUL, 0, 1),
                                   unary(KILN_UNARY_RELU, 2),
                                   binary(KILN_BINARY_SUB, 3, 1)}};
    kiln_tensor *a = vector(dev, 300, 0.5f), *b = vector(dev, 300, -1.5f);
    kiln_tensor *in[2] = {a, b};
    kiln_tensor *x = kiln__fused(dev, CALL, &p, KILN_F32, in, 1,
                                 (int64_t[]){300});
    uint64_t first = builds();
    /* Other shapes and views, same program: no new build. */
    kiln_tensor *bt = kiln_broadcast_to(b, 2, (int64_t[]){4, 300});
    kiln_tensor *in2[2] = {bt, a};
    kiln_tensor *y = kiln__fused(dev, CALL, &p, KILN_F32, in2, 2,
                                 (int64_t[]){4, 300});
    uint64_t second = builds();
    p.instr[2] = binary(KILN_BINARY_ADD, 3, 1);
    kiln_tensor *z = kiln__fused(dev, CALL, &p, KILN_F32, in, 1,
                                 (int64_t[]){300});
    uint64_t third = builds();
    int builds_at_all = kiln_context_device(dev)->backend !=
                        KILN_BACKEND_REFERENCE;
    CHECK(x && y && z, "fused runs failed: %s", kiln_error_message(dev));
    CHECK(second == first, "the same program built again (%llu -> %llu)",
          (unsigned long long)first, (unsigned long long)second);
    CHECK(third == second + (uint64_t)builds_at_all,
          "another program: %llu -> %llu builds", (unsigned long long)second,
          (unsigned long long)third);
    printf("ok    builds: one per program (%llu in all)\n",
           (unsigned long long)third);
    kiln_tensor_free(x);
    kiln_tensor_free(y);
    kiln_tensor_free(z);
    kiln_tensor_free(bt);
    kiln_tensor_free(a);
    kiln_tensor_free(b);
}

/* ---- errors ------------------------------------------------------------- */

static void expect_error(kiln_tensor *got, kiln_status want, const char *what)
{
    CHECK(got == NULL, "%s: accepted", what);
    CHECK(kiln_status_of(dev) == want, "%s: status \"%s\", want \"%s\" (%s)",
          what, kiln_status_string(kiln_status_of(dev)),
          kiln_status_string(want), kiln_error_message(dev));
    CHECK(strstr(kiln_error_message(dev), CALL) != NULL,
          "%s: the message does not name the call: %s", what,
          kiln_error_message(dev));
    kiln_tensor_free(got);
    kiln_clear_error(dev);
}

static void test_errors(void)
{
    int64_t n = 6;
    kiln_tensor *f = vector(dev, n, 1), *g = vector(dev, n, 2);
    kiln_tensor *i = kiln_cast(f, KILN_I32);
    kiln_tensor *in[KILN_FUSED_MAX_INPUTS + 1] = {f, g, f, g, f, g, f};
    kiln_tensor *iin[2] = {i, i};
    const kiln_fused_program add = {2, 1, {binary(KILN_BINARY_ADD, 0, 1)}};
    kiln_fused_program p;

    expect_error(kiln__fused(dev, CALL, NULL, KILN_F32, in, 1, &n),
                 KILN_ERROR_INVALID_ARGUMENT, "NULL program");
    p = add;
    p.ninputs = 0;
    expect_error(kiln__fused(dev, CALL, &p, KILN_F32, in, 1, &n),
                 KILN_ERROR_INVALID_ARGUMENT, "0 inputs");
    p.ninputs = KILN_FUSED_MAX_INPUTS + 1;
    expect_error(kiln__fused(dev, CALL, &p, KILN_F32, in, 1, &n),
                 KILN_ERROR_INVALID_ARGUMENT, "7 inputs");
    p = add;
    p.ninstr = 0;
    expect_error(kiln__fused(dev, CALL, &p, KILN_F32, in, 1, &n),
                 KILN_ERROR_INVALID_ARGUMENT, "0 instructions");
    p.ninstr = KILN_FUSED_MAX_INSTRS + 1;
    expect_error(kiln__fused(dev, CALL, &p, KILN_F32, in, 1, &n),
                 KILN_ERROR_INVALID_ARGUMENT, "17 instructions");
    /* Instruction 0 of a 2-input program may read r0 and r1 only. */
    p = add;
    p.instr[0] = binary(KILN_BINARY_ADD, 0, 2);
    expect_error(kiln__fused(dev, CALL, &p, KILN_F32, in, 1, &n),
                 KILN_ERROR_INVALID_ARGUMENT, "register not yet written");
    p.instr[0] = select3(0, 1, 200);
    expect_error(kiln__fused(dev, CALL, &p, KILN_F32, in, 1, &n),
                 KILN_ERROR_INVALID_ARGUMENT, "register out of range");
    static const uint32_t unknown[] = {KILN_UNARY_COUNT,
                                       KILN_FUSED_BINARY + KILN_BINARY_COUNT,
                                       KILN_FUSED_SELECT + 1, 0xff};
    for (size_t u = 0; u < sizeof unknown / sizeof *unknown; u++) {
        p = add;
        p.instr[0] = kiln_fused_instr((int)unknown[u], 0, 0, 0);
        expect_error(kiln__fused(dev, CALL, &p, KILN_F32, in, 1, &n),
                     KILN_ERROR_INVALID_ARGUMENT, "unknown op code");
    }
    p = add;
    p.instr[0] = kiln_fused_instr(KILN_FUSED_UNARY + KILN_UNARY_NEG, 0, 1, 0);
    expect_error(kiln__fused(dev, CALL, &p, KILN_F32, in, 1, &n),
                 KILN_ERROR_INVALID_ARGUMENT, "unused operand set");
    /* Float-only ops on i32, as kiln_exp / kiln_pow refuse them. */
    p = add;
    p.instr[0] = unary(KILN_UNARY_EXP, 0);
    expect_error(kiln__fused(dev, CALL, &p, KILN_I32, iin, 1, &n),
                 KILN_ERROR_DTYPE, "exp on i32");
    p.instr[0] = unary(KILN_UNARY_TANH, 1);
    expect_error(kiln__fused(dev, CALL, &p, KILN_I32, iin, 1, &n),
                 KILN_ERROR_DTYPE, "tanh on i32");
    p.instr[0] = binary(KILN_BINARY_POW, 0, 1);
    expect_error(kiln__fused(dev, CALL, &p, KILN_I32, iin, 1, &n),
                 KILN_ERROR_DTYPE, "pow on i32");
    /* Inputs. */
    kiln_tensor *mixed[2] = {f, i};
    expect_error(kiln__fused(dev, CALL, &add, KILN_F32, mixed, 1, &n),
                 KILN_ERROR_DTYPE, "an i32 input in an f32 program");
    int64_t other = 4;
    expect_error(kiln__fused(dev, CALL, &add, KILN_F32, in, 1, &other),
                 KILN_ERROR_SHAPE, "inputs that do not broadcast");
    expect_error(kiln__fused(dev, CALL, &add, KILN_F32, in, 1,
                             (int64_t[]){-1}),
                 KILN_ERROR_SHAPE, "a negative size");
    kiln_tensor *missing[2] = {f, NULL};
    expect_error(kiln__fused(dev, CALL, &add, KILN_F32, missing, 1, &n),
                 KILN_ERROR_INVALID_ARGUMENT, "a NULL input");
    /* After an earlier failure a NULL input adds no message. */
    kiln_tensor *v4 = vector(dev, 4, 1);
    kiln_tensor *bad = kiln_add(f, v4);
    kiln_tensor_free(v4);
    CHECK(bad == NULL, "kiln_add of [6] and [4] accepted");
    char first[256];
    snprintf(first, sizeof first, "%s", kiln_error_message(dev));
    CHECK(kiln__fused(dev, CALL, &add, KILN_F32, missing, 1, &n) == NULL &&
              strcmp(first, kiln_error_message(dev)) == 0,
          "a NULL input after an error changed the message to %s",
          kiln_error_message(dev));
    kiln_clear_error(dev);
    CHECK(kiln__fused(NULL, CALL, &add, KILN_F32, in, 1, &n) == NULL,
          "a NULL context accepted");

    /* A layout that needs 4 dimensions: b broadcasts along dims 1 and 3,
     * so no two neighbouring dimensions merge for both inputs. */
    int64_t s4[4] = {2, 3, 4, 5}, sb[4] = {2, 1, 4, 1};
    kiln_tensor *a4 = kiln_tensor_new(dev, KILN_F32, 4, s4);
    kiln_tensor *b4 = kiln_tensor_new(dev, KILN_F32, 4, sb);
    kiln_tensor *in4[2] = {a4, b4};
    kiln_fill(a4, 1);
    kiln_fill(b4, 2);
    CHECK(!kiln__fused_fits(2, in4, 4, s4), "a 4-D layout fits");
    CHECK(kiln__fused_fits(1, in4, 4, s4), "a dense 4-D input does not fit");
    expect_error(kiln__fused(dev, CALL, &add, KILN_F32, in4, 4, s4),
                 KILN_ERROR_UNSUPPORTED, "a 4-D layout");
    CHECK(!kiln__fused_fits(2, in, 1, &other),
          "inputs that do not broadcast fit");

    /* A 0-element shape: an empty result, no kernel. */
    kiln_context_stats s0, s1;
    kiln_context_get_stats(dev, &s0);
    int64_t empty[3] = {3, 0, 2};
    kiln_tensor *e0 = kiln_tensor_new(dev, KILN_F32, 3, empty);
    kiln_tensor *ein[2] = {e0, e0};
    CHECK(kiln__fused_fits(2, ein, 3, empty), "a 0-element shape does not fit");
    kiln_tensor *e = kiln__fused(dev, CALL, &add, KILN_F32, ein, 3, empty);
    CHECK(e && kiln_tensor_numel(e) == 0 && kiln_tensor_ndim(e) == 3,
          "0-element shape: %s", kiln_error_message(dev));
    CHECK(kiln__fused_into(dev, CALL, &add, ein, e0) == KILN_OK,
          "0-element fused_into: %s", kiln_error_message(dev));
    kiln_context_get_stats(dev, &s1);
    CHECK(s1.dispatches == s0.dispatches, "a 0-element shape dispatched");
    kiln_tensor_free(e);
    kiln_tensor_free(e0);

    /* Outputs of kiln__fused_into. */
    kiln_tensor *sq = kiln_tensor_new(dev, KILN_F32, 2, (int64_t[]){3, 4});
    kiln_tensor *sqt = kiln_transpose(sq, 0, 1);
    kiln_tensor *two[2] = {sqt, sqt};
    CHECK(kiln__fused_into(dev, CALL, &add, two, sqt) ==
              KILN_ERROR_INVALID_ARGUMENT &&
              strstr(kiln_error_message(dev), CALL),
          "a non-contiguous output accepted: %s", kiln_error_message(dev));
    kiln_clear_error(dev);
    CHECK(kiln__fused_into(dev, CALL, &add, in, i) == KILN_ERROR_DTYPE,
          "an i32 output for f32 inputs accepted: %s",
          kiln_error_message(dev));
    kiln_clear_error(dev);
    kiln_tensor_free(sqt);
    kiln_tensor_free(sq);

    /* Six inputs (the most) still run after all that. */
    kiln_fused_program six = {6, 5, {binary(KILN_BINARY_ADD, 0, 1),
                                     binary(KILN_BINARY_ADD, 6, 2),
                                     binary(KILN_BINARY_ADD, 7, 3),
                                     binary(KILN_BINARY_ADD, 8, 4),
                                     binary(KILN_BINARY_ADD, 9, 5)}};
    kiln_tensor *sum = kiln__fused(dev, CALL, &six, KILN_F32, in, 1, &n);
    float got[6];
    CHECK(sum && kiln_tensor_read(sum, got, sizeof got) == KILN_OK &&
              got[1] == 3 * (1.0f - 2) + 3 * (2.0f - 2),
          "six inputs after the errors: %s", kiln_error_message(dev));
    kiln_tensor_free(sum);
    kiln_tensor_free(a4);
    kiln_tensor_free(b4);
    kiln_tensor_free(i);
    kiln_tensor_free(f);
    kiln_tensor_free(g);
    printf("ok    errors\n");
}

/* ---- outputs: in place, overlapping, recorded ----------------------------- */

/* Reads @t (f32) into a new array. */
static float *read_f32(kiln_tensor *t)
{
    int64_t n = kiln_tensor_numel(t);
    float *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    if (kiln_tensor_read(t, v, (size_t)n * sizeof *v) != KILN_OK) {
        free(v);
        return NULL;
    }
    return v;
}

static void test_into(void)
{
    /* relu(x + bias) into x itself: element for element, in place. */
    const kiln_fused_program p = {2, 2, {binary(KILN_BINARY_ADD, 0, 1),
                                         unary(KILN_UNARY_RELU, 2)}};
    int64_t shape[2] = {5, 5};
    float xv[25], bv[5], want[25];
    for (int k = 0; k < 25; k++)
        xv[k] = (float)(k % 9) - 4;
    for (int k = 0; k < 5; k++)
        bv[k] = (float)k - 1.5f;
    for (int k = 0; k < 25; k++) {
        float s = xv[k] + bv[k % 5];
        want[k] = s > 0 ? s : 0;
    }
    kiln_tensor *x = kiln_tensor_from_data(dev, KILN_F32, 2, shape, xv,
                                           sizeof xv);
    kiln_tensor *bias = kiln_tensor_from_data(dev, KILN_F32, 1, shape + 1,
                                              bv, sizeof bv);
    kiln_tensor *in[2] = {x, bias};
    CHECK(kiln__fused_into(dev, CALL, &p, in, x) == KILN_OK,
          "in place: %s", kiln_error_message(dev));
    float *got = read_f32(x);
    CHECK(got && memcmp(got, want, sizeof want) == 0,
          "in place: wrong values");
    free(got);

    /* x + x^T into x: the transposed input overlaps the output another
     * way, so it must go through a temporary (the reference, which runs
     * in order, would read overwritten elements otherwise). */
    const kiln_fused_program sym = {2, 1, {binary(KILN_BINARY_ADD, 0, 1)}};
    kiln_tensor_write(x, xv, sizeof xv);
    kiln_tensor *xt = kiln_transpose(x, 0, 1);
    kiln_tensor *in2[2] = {x, xt};
    CHECK(kiln__fused_into(dev, CALL, &sym, in2, x) == KILN_OK,
          "overlapping: %s", kiln_error_message(dev));
    got = read_f32(x);
    int ok = got != NULL;
    for (int r = 0; ok && r < 5; r++)
        for (int c = 0; c < 5; c++)
            ok = ok && got[r * 5 + c] == xv[r * 5 + c] + xv[c * 5 + r];
    CHECK(ok, "overlapping: wrong values");
    free(got);

    /* Recorded once, replayed on new data. */
    kiln_tensor *out = kiln_tensor_new(dev, KILN_F32, 2, shape);
    kiln_tensor_write(x, xv, sizeof xv);
    CHECK(kiln_recording_begin(dev) == KILN_OK, "recording_begin: %s",
          kiln_error_message(dev));
    CHECK(kiln__fused_into(dev, CALL, &p, in, out) == KILN_OK,
          "recorded: %s", kiln_error_message(dev));
    kiln_recording *rec = kiln_recording_end(dev);
    CHECK(rec && kiln_recording_dispatches(rec) == 1, "recording: %s",
          kiln_error_message(dev));
    for (int k = 0; k < 25; k++)
        xv[k] = -xv[k];
    for (int k = 0; k < 25; k++) {
        float s = xv[k] + bv[k % 5];
        want[k] = s > 0 ? s : 0;
    }
    kiln_tensor_write(x, xv, sizeof xv);
    CHECK(rec && kiln_recording_replay(rec) == KILN_OK, "replay: %s",
          kiln_error_message(dev));
    got = read_f32(out);
    CHECK(got && memcmp(got, want, sizeof want) == 0,
          "replayed: wrong values");
    free(got);
    kiln_recording_free(rec);
    kiln_tensor_free(out);
    kiln_tensor_free(xt);
    kiln_tensor_free(bias);
    kiln_tensor_free(x);
    int guards_ok = 1;
    check_contexts("kiln__fused_into", &guards_ok);
    CHECK(guards_ok, "kiln__fused_into: guards or validation");
    printf("ok    in place, overlapping, recorded\n");
}

int main(int argc, char **argv)
{
    open_contexts(argc, argv);
    test_every_op(KILN_I32);
    test_every_op(KILN_F32);
    if (device_has_f64())
        test_every_op(KILN_F64);
    /* Few programs, many layouts each: every program is one build (about
     * half a second with PoCL), a layout costs next to nothing. */
    test_random(KILN_I32, EXACT, 4, 7);
    test_random(KILN_F32, EXACT, 4, 7);
    test_random(KILN_F32, SMOOTH, 4, 7);
    if (device_has_f64()) {
        test_random(KILN_F64, EXACT, 3, 7);
        test_random(KILN_F64, SMOOTH, 3, 7);
    } else {
        printf("note: the device has no f64\n");
    }
    test_builds_once();
    test_errors();
    test_into();
    kiln_context_stats s;
    kiln_context_get_stats(dev, &s);
    printf("device: %llu dispatches, %llu programs built, %llu from cache\n",
           (unsigned long long)s.dispatches,
           (unsigned long long)s.programs_built,
           (unsigned long long)s.programs_cached);
    kiln_context_destroy(dev);
    kiln_context_destroy(ref);
    return harness_exit();
}
