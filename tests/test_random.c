/*
 * test_random.c - Philox random numbers, dropout, permutations and
 * categorical sampling on the device under test.
 *
 * Checks: the generator against Random123's known answers; uniform and
 * Bernoulli bit-identical to the host formula and to the reference for
 * the same (seed, offset), also through strided views; normal and
 * truncated normal within a few ulp of the reference; counter semantics
 * (offset k shifts the stream by k; other offsets and seeds differ);
 * moments of 100k samples within 4 standard errors; dropout's zero
 * fraction, scaling, mask and gradient (f64 gradient check on the
 * reference); the device-held offset mode (bit-identical to the summed
 * offset, also in recorded replays); permutations; categorical
 * frequencies against softmax(logits / T); argument errors.
 *
 * usage: test_random --device SPEC
 */
#include "op_check.h" /* harness, read_doubles */
#include "ops/ops.h" /* kiln__random_fill, kiln__dropout_dev */
#include "queue/kernels_random.h"

static kiln_context *dev, *ref;
static int have_f64;


static void health(const char *what)
{
    CHECK(kiln_check_guards(dev) == KILN_OK, "%s: guards: %s", what,
          kiln_error_message(dev));
    CHECK(kiln_validation_message_count(dev) == 0, "%s: validation: %s",
          what, kiln_error_message(dev));
    CHECK(kiln_status_of(dev) == KILN_OK, "%s: %s", what,
          kiln_error_message(dev));
    kiln_clear_error(dev);
}

/* A fresh tensor of @n filled by @fill(seed, offset), read as doubles. */
typedef kiln_status (*fill_fn)(kiln_tensor *t, uint64_t seed,
                               uint64_t offset, const double *arg);

static kiln_status f_uniform(kiln_tensor *t, uint64_t s, uint64_t o,
                             const double *a)
{
    return kiln_random_uniform(t, s, o, a[0], a[1]);
}
static kiln_status f_normal(kiln_tensor *t, uint64_t s, uint64_t o,
                            const double *a)
{
    return kiln_random_normal(t, s, o, a[0], a[1]);
}
static kiln_status f_trunc(kiln_tensor *t, uint64_t s, uint64_t o,
                           const double *a)
{
    return kiln_random_truncated_normal(t, s, o, a[0], a[1]);
}
static kiln_status f_bernoulli(kiln_tensor *t, uint64_t s, uint64_t o,
                               const double *a)
{
    return kiln_random_bernoulli(t, s, o, a[0]);
}

static double *draw(kiln_context *ctx, kiln_dtype t, int64_t n, fill_fn f,
                    uint64_t seed, uint64_t offset, const double *arg)
{
    kiln_tensor *x = kiln_tensor_new(ctx, t, 1, &n);
    double *v = NULL;
    int64_t got;
    if (f(x, seed, offset, arg) == KILN_OK)
        v = read_doubles(x, &got);
    kiln_tensor_free(x);
    return v;
}

/* ---- the generator ------------------------------------------------------- */

static void test_known_answers(void)
{
    /* Random123 tests/kat_vectors, the three philox4x32 10 lines. */
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
         0xffffffff, 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822,
         0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int k = 0; k < 3; k++) {
        uint32_t out[4];
        kiln_philox4x32_10(kat[k], kat[k] + 4, out);
        CHECK(memcmp(out, kat[k] + 6, sizeof out) == 0,
              "philox known answer %d: %08x %08x %08x %08x", k, out[0],
              out[1], out[2], out[3]);
    }
    /* The device's uniform f32 is (w0 >> 8) 2^-24 of that generator. */
    int64_t n = 1000;
    uint64_t seed = 0x0123456789abcdefull, offset = 0xfffffffffffffe00ull;
    double arg[2] = {0, 1};
    double *u = draw(dev, KILN_F32, n, f_uniform, seed, offset, arg);
    int bad = u ? 0 : 1;
    for (int64_t i = 0; u && i < n; i++) {
        uint32_t w[4];
        kiln_philox_element(seed, offset, (uint64_t)i, 0, w);
        bad += u[i] != (double)(w[0] >> 8) * 0x1.0p-24;
    }
    CHECK(bad == 0, "uniform f32 differs from the host formula at %d "
          "elements (counter wraps past 2^64)", bad);
    free(u);
    health("known answers");
}

/* Same (seed, offset): bit-identical to the reference for uniform and
 * Bernoulli, a few ulp for the normals; and the counter semantics. */
static void test_against_reference(void)
{
    static const struct { const char *name; fill_fn f; double arg[2];
                          int exact; } dists[] = {
        {"uniform", f_uniform, {-2.5, 7}, 1},
        {"bernoulli", f_bernoulli, {0.3, 0}, 1},
        {"normal", f_normal, {1.5, 2}, 0},
        {"truncated_normal", f_trunc, {-1, 0.5}, 0},
    };
    const kiln_dtype ts[3] = {KILN_F32, KILN_F64, KILN_I32};
    for (size_t d = 0; d < sizeof dists / sizeof *dists; d++) {
        for (int ti = 0; ti < 3; ti++) {
            kiln_dtype t = ts[ti];
            if ((t == KILN_I32 && dists[d].f != f_bernoulli) ||
                (t == KILN_F64 && !have_f64))
                continue;
            int64_t n = 4097;
            double *a = draw(dev, t, n, dists[d].f, 42, 1000, dists[d].arg);
            double *b = draw(ref, t, n, dists[d].f, 42, 1000, dists[d].arg);
            double *c = draw(dev, t, n - 7, dists[d].f, 42, 1007,
                             dists[d].arg);
            double *e = draw(dev, t, n, dists[d].f, 42, 5000, dists[d].arg);
            double *s = draw(dev, t, n, dists[d].f, 43, 1000, dists[d].arg);
            CHECK(a && b && c && e && s, "%s %s: %s", dists[d].name,
                  kiln_dtype_name(t), kiln_error_message(dev));
            double ulp = t == KILN_F32 ? 0x1.0p-23 : 0x1.0p-52;
            double worst = 0;
            int64_t mismatch = 0, shifted = 0, same_off = 0, same_seed = 0;
            for (int64_t i = 0; a && b && c && e && s && i < n; i++) {
                double err = fabs(a[i] - b[i]);
                /* A few ulp of the value, or of 1 near 0 (cos zeros). */
                double allowed = 16 * ulp * (fabs(b[i]) + dists[d].arg[1]);
                if (dists[d].exact ? err != 0 : err > allowed)
                    mismatch++;
                if (!dists[d].exact && allowed > 0)
                    worst = fmax(worst, err / allowed);
                if (i + 7 < n)
                    shifted += c[i] != a[i + 7];
                same_off += e[i] == a[i];
                same_seed += s[i] == a[i];
            }
            CHECK(mismatch == 0, "%s %s: %lld of %lld elements differ from "
                  "the reference", dists[d].name, kiln_dtype_name(t),
                  (long long)mismatch, (long long)n);
            CHECK(shifted == 0, "%s %s: offset + 7 is not the stream shifted "
                  "by 7 (%lld differ)", dists[d].name, kiln_dtype_name(t),
                  (long long)shifted);
            /* Bernoulli agrees by chance ~58% of the time; values never. */
            double limit = dists[d].f == f_bernoulli ? 0.7 * n : 0.01 * n;
            CHECK(same_off < limit && same_seed < limit,
                  "%s %s: another offset/seed gives the same numbers "
                  "(%lld, %lld of %lld)", dists[d].name, kiln_dtype_name(t),
                  (long long)same_off, (long long)same_seed, (long long)n);
            printf("%-5s %s %s vs reference: %s, worst %.2f of tolerance\n",
                   mismatch ? "FAIL" : "ok", dists[d].name,
                   kiln_dtype_name(t), dists[d].exact ? "bit-exact" : "close",
                   worst);
            free(a);
            free(b);
            free(c);
            free(e);
            free(s);
        }
    }
    health("against reference");
}

/* Filling a strided view writes element i of the view's logical order,
 * and leaves the elements between untouched. */
static void test_strided_views(void)
{
    int64_t shape[2] = {7, 10};
    kiln_tensor *base = kiln_tensor_new(dev, KILN_F32, 2, shape);
    kiln_fill(base, -1);
    kiln_tensor *tv = kiln_transpose(base, 0, 1);            /* [10, 7] */
    kiln_tensor *sv = kiln_slice(tv, 1, 1, 7, 2);            /* [10, 3] */
    CHECK(kiln_random_uniform(sv, 9, 77, 0, 1) == KILN_OK, "strided: %s",
          kiln_error_message(dev));
    float got[30], all[70];
    kiln_tensor_read(sv, got, sizeof got);
    kiln_tensor_read(base, all, sizeof all);
    int64_t n = 30;
    double arg[2] = {0, 1};
    double *want = draw(dev, KILN_F32, n, f_uniform, 9, 77, arg);
    int bad = 0, touched = 0;
    for (int i = 0; want && i < 30; i++)
        bad += got[i] != (float)want[i];
    for (int i = 0; i < 70; i++)
        touched += all[i] != -1;
    CHECK(want && bad == 0, "uniform into a strided view: %d differ", bad);
    CHECK(touched == 30, "uniform into a strided view wrote %d elements, "
          "not 30", touched);
    free(want);
    kiln_tensor_free(sv);
    kiln_tensor_free(tv);
    kiln_tensor_free(base);
    health("strided views");
}

/* ---- moments ------------------------------------------------------------- */

static void moments(const double *v, int64_t n, double *mean, double *var)
{
    long double s = 0, q = 0;
    for (int64_t i = 0; i < n; i++)
        s += v[i];
    *mean = (double)(s / n);
    for (int64_t i = 0; i < n; i++)
        q += (v[i] - *mean) * (v[i] - *mean);
    *var = (double)(q / (n - 1));
}

/* mean and variance within 4 standard errors: se(mean) = sqrt(var / n),
 * se(var) = sqrt((mu4 - var^2) / n). */
static void check_moments(const char *name, kiln_dtype t, const double *v,
                          int64_t n, double mean, double var, double mu4)
{
    double m, s2;
    moments(v, n, &m, &s2);
    double zm = fabs(m - mean) / sqrt(var / n);
    double zv = mu4 > 0 ? fabs(s2 - var) / sqrt((mu4 - var * var) / n) : 0;
    printf("%-5s %s %s: mean %.5f (want %.5f, %.2f se), var %.5f (want "
           "%.5f, %.2f se)\n", zm < 4 && zv < 4 ? "ok" : "FAIL", name,
           kiln_dtype_name(t), m, mean, zm, s2, var, zv);
    CHECK(zm < 4 && zv < 4, "%s %s moments", name, kiln_dtype_name(t));
}

static void test_moments(void)
{
    const int64_t n = 100000;
    /* Standard normal truncated to [-2, 2]: var = 1 - 4 phi(2) / Z,
     * E z^4 = 3 - 28 phi(2) / Z, Z = 2 Phi(2) - 1. */
    double phi2 = exp(-2.0) / sqrt(2 * M_PI), zn = erf(2 / sqrt(2.0));
    double tvar = 1 - 4 * phi2 / zn, tmu4 = 3 - 28 * phi2 / zn;
    for (int ti = 0; ti < (have_f64 ? 2 : 1); ti++) {
        kiln_dtype t = ti ? KILN_F64 : KILN_F32;
        double ua[2] = {-1, 3}, na[2] = {0.5, 2}, ba[1] = {0.25};
        double *u = draw(dev, t, n, f_uniform, 7, 0, ua);
        double *g = draw(dev, t, n, f_normal, 7, 0, na);
        double *tr = draw(dev, t, n, f_trunc, 7, 0, na);
        double *b = draw(dev, t, n, f_bernoulli, 7, 0, ba);
        if (!u || !g || !tr || !b) {
            CHECK(0, "moments draws: %s", kiln_error_message(dev));
            return;
        }
        int out_of_range = 0;
        for (int64_t i = 0; i < n; i++) {
            out_of_range += !(u[i] >= -1 && u[i] < 3);
            out_of_range += !(fabs(tr[i] - 0.5) <= 2 * 2 * (1 + 1e-6));
            out_of_range += b[i] != 0 && b[i] != 1;
        }
        CHECK(out_of_range == 0, "%d samples outside their support",
              out_of_range);
        check_moments("uniform[-1,3)", t, u, n, 1, 16.0 / 12, 256.0 / 80);
        check_moments("normal(0.5,2)", t, g, n, 0.5, 4, 3 * 16);
        check_moments("truncated_normal(0.5,2)", t, tr, n, 0.5, 4 * tvar,
                      16 * tmu4);
        check_moments("bernoulli(0.25)", t, b, n, 0.25, 0.1875, 0);
        free(u);
        free(g);
        free(tr);
        free(b);
    }
    double ba[1] = {0.7};
    double *bi = draw(dev, KILN_I32, n, f_bernoulli, 8, 0, ba);
    if (bi)
        check_moments("bernoulli(0.7)", KILN_I32, bi, n, 0.7, 0.21, 0);
    free(bi);
    /* p = 0 and p = 1 are exact. */
    double p0[1] = {0}, p1[1] = {1};
    double *z = draw(dev, KILN_F32, 1000, f_bernoulli, 1, 0, p0);
    double *o = draw(dev, KILN_F32, 1000, f_bernoulli, 1, 0, p1);
    int bad = !z || !o;
    for (int i = 0; !bad && i < 1000; i++)
        bad += z[i] != 0 || o[i] != 1;
    CHECK(bad == 0, "bernoulli p = 0 / 1 not exact");
    free(z);
    free(o);
    health("moments");
}

/* ---- offsets held on the device ------------------------------------------ */

/* Do @a and @b (same dtype and size) hold the same bytes? */
static int same_bytes(kiln_tensor *a, kiln_tensor *b)
{
    size_t bytes = (size_t)kiln_tensor_numel(a) *
                   kiln_dtype_size(kiln_tensor_dtype(a));
    char *x = malloc(bytes), *y = malloc(bytes);
    int same = x && y && kiln_tensor_read(a, x, bytes) == KILN_OK &&
               kiln_tensor_read(b, y, bytes) == KILN_OK &&
               memcmp(x, y, bytes) == 0;
    free(x);
    free(y);
    return same;
}

/* Writes @v as {lo, hi} into elements 2, 3 of @words (4 x i32) and returns
 * a view of those two: a device offset not at the start of its block. */
static kiln_tensor *device_words(kiln_tensor *words, uint64_t v)
{
    uint32_t w[4] = {0xdeadbeefu, 0xdeadbeefu, (uint32_t)v,
                     (uint32_t)(v >> 32)};
    kiln_tensor_write(words, w, sizeof w);
    return kiln_slice(words, 0, 2, 4, 1);
}

/* KILN_RANDOM_DEVICE_OFFSET: (param offset, device words) draws exactly
 * what the plain mode draws at their 64-bit sum, for every distribution
 * and dtype, with carries between the words, past 2^64 and within the
 * stream; a recorded dispatch reads the words at each replay; dropout's
 * mask the same. */
static void test_device_offset(void)
{
    static const struct { uint64_t param, dev; } cases[] = {
        {0, 7ull << 32},                /* a graph's run counter */
        {0xfffffff0ull, 0x200000020ull}, /* the low words carry */
        {0xffffffffffffffffull, 2},     /* the sum wraps past 2^64 */
        {5, 0xffffff00ull},             /* the stream crosses 2^32 */
    };
    static const int dists[4] = {KILN_RANDOM_UNIFORM, KILN_RANDOM_NORMAL,
                                 KILN_RANDOM_TRUNCATED_NORMAL,
                                 KILN_RANDOM_BERNOULLI};
    static const double args[4][2] = {{-1, 3}, {0.5, 2}, {0, 1}, {0.3, 0}};
    const kiln_dtype dts[3] = {KILN_F32, KILN_F64, KILN_I32};
    uint64_t seed = 0x5eed5eed12345ull;
    int64_t n = 1000, four = 4;
    kiln_tensor *words = kiln_tensor_new(dev, KILN_I32, 1, &four);
    int bad = 0, tried = 0;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        for (int t = 0; t < 3; t++)
            for (int k = 0; k < 4; k++) {
                if ((dts[t] == KILN_F64 && !have_f64) ||
                    (dts[t] == KILN_I32 && dists[k] != KILN_RANDOM_BERNOULLI))
                    continue;
                kiln_tensor *a = kiln_tensor_new(dev, dts[t], 1, &n);
                kiln_tensor *b = kiln_tensor_new(dev, dts[t], 1, &n);
                kiln_tensor *dv = device_words(words, cases[c].dev);
                kiln_status s1 = kiln__random_fill(
                    a, dists[k], seed, cases[c].param + cases[c].dev, NULL,
                    args[k][0], args[k][1]);
                kiln_status s2 = kiln__random_fill(b, dists[k], seed,
                                                   cases[c].param, dv,
                                                   args[k][0], args[k][1]);
                int ok = s1 == KILN_OK && s2 == KILN_OK && same_bytes(a, b);
                if (!ok)
                    printf("  device offset differs: case %zu %s dist %d\n",
                           c, kiln_dtype_name(dts[t]), dists[k]);
                bad += !ok;
                tried++;
                kiln_tensor_free(dv);
                kiln_tensor_free(a);
                kiln_tensor_free(b);
            }
    CHECK(bad == 0, "device offset = param offset of the sum, bit for bit: "
          "%d of %d draws differ", bad, tried);
    printf("%-5s device offset: %d draws bit-identical to the summed "
           "offset\n", bad ? "FAIL" : "ok", tried - bad);

    /* A recorded dispatch: each replay reads the words written before. */
    kiln_tensor *u = kiln_tensor_new(dev, KILN_F32, 1, &n);
    kiln_tensor *dv = device_words(words, 0);
    kiln_recording_begin(dev);
    kiln__random_fill(u, KILN_RANDOM_UNIFORM, seed, 3, dv, 0, 1);
    kiln_recording *rec = kiln_recording_end(dev);
    bad = !rec;
    for (uint64_t r = 11; rec && r < 14; r++) {
        kiln_tensor_free(device_words(words, r << 32));
        kiln_recording_replay(rec);
        kiln_tensor *want = kiln_tensor_new(dev, KILN_F32, 1, &n);
        kiln_random_uniform(want, seed, 3 + (r << 32), 0, 1);
        bad += !same_bytes(u, want);
        kiln_tensor_free(want);
    }
    CHECK(bad == 0, "replays of a recorded draw follow the device offset "
          "(%d wrong): %s", bad, kiln_error_message(dev));
    kiln_recording_free(rec);
    kiln_tensor_free(u);

    /* Dropout: mask and output as kiln_dropout's at the summed offset. */
    int64_t shape[2] = {37, 29};
    kiln_tensor *x = kiln_tensor_new(dev, KILN_F32, 2, shape);
    kiln_random_normal(x, 5, 0, 0, 1);
    kiln_tensor *m1 = NULL, *m2 = NULL;
    kiln_tensor_free(device_words(words, 9ull << 32));
    kiln_tensor *y1 = kiln_dropout(x, 0.4, 1, 21, 4 + (9ull << 32), &m1);
    kiln_tensor *y2 = kiln__dropout_dev(x, 0.4, 21, 4, dv, &m2);
    CHECK(y1 && y2 && same_bytes(y1, y2) && same_bytes(m1, m2),
          "dropout with a device offset = kiln_dropout at the sum: %s",
          kiln_error_message(dev));
    kiln_tensor_free(y1);
    kiln_tensor_free(y2);
    kiln_tensor_free(m1);
    kiln_tensor_free(m2);
    kiln_tensor_free(x);

    /* The words must be 2 contiguous i32 on the same context. */
    kiln_tensor *f = kiln_tensor_new(dev, KILN_F32, 1, (int64_t[]){2});
    kiln_tensor *w = kiln_tensor_new(dev, KILN_F32, 1, &n);
    kiln_status st = kiln__random_fill(w, KILN_RANDOM_UNIFORM, 1, 0, f, 0, 1);
    CHECK(st == KILN_ERROR_INVALID_ARGUMENT &&
              strstr(kiln_error_message(dev), "device offset"),
          "f32 device offset refused: %s", kiln_error_message(dev));
    kiln_clear_error(dev);
    st = kiln__random_fill(w, KILN_RANDOM_UNIFORM, 1, 0, words, 0, 1);
    CHECK(st == KILN_ERROR_INVALID_ARGUMENT,
          "4-element device offset refused: %s", kiln_error_message(dev));
    kiln_clear_error(dev);
    kiln_tensor_free(f);
    kiln_tensor_free(w);
    kiln_tensor_free(dv);
    kiln_tensor_free(words);
    health("device offset");
}

/* ---- dropout -------------------------------------------------------------- */

static void test_dropout(void)
{
    int64_t shape[2] = {200, 501}, n = 200 * 501;
    double rate = 0.3, scale = 1 / (1 - rate);
    float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * 4),
          *m = malloc((size_t)n * 4), *yr = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(1 + (i % 17)) * (i % 2 ? 1.f : -1.f);
    kiln_context *ctxs[2] = {dev, ref};
    for (int k = 0; k < 2; k++) {
        kiln_tensor *xt = kiln_tensor_from_data(ctxs[k], KILN_F32, 2, shape,
                                                x, (size_t)n * 4);
        /* A transposed input: the mask follows the logical order. */
        kiln_tensor *xv = kiln_transpose(xt, 0, 1);
        kiln_tensor *xc = kiln_contiguous_copy(xv);
        kiln_tensor *mask = NULL;
        kiln_tensor *yt = kiln_dropout(xv, rate, 1, 11, 3, &mask);
        kiln_tensor *ym = kiln_mul(xc, mask);
        CHECK(yt && mask && ym, "dropout: %s", kiln_error_message(ctxs[k]));
        kiln_tensor_read(yt, k ? yr : y, (size_t)n * 4);
        float *xs = malloc((size_t)n * 4), *yms = malloc((size_t)n * 4);
        kiln_tensor_read(xc, xs, (size_t)n * 4);
        kiln_tensor_read(mask, m, (size_t)n * 4);
        kiln_tensor_read(ym, yms, (size_t)n * 4);
        int64_t zeros = 0, bad = 0;
        for (int64_t i = 0; i < n; i++) {
            float v = k ? yr[i] : y[i];
            zeros += v == 0;
            bad += v != yms[i]; /* y = x * mask exactly */
            bad += !(m[i] == 0 || m[i] == (float)scale);
            bad += v != 0 && fabs(v - xs[i] * scale) > 1e-6 * fabs(v);
        }
        double z = fabs((double)zeros - rate * n) / sqrt(n * rate * (1 - rate));
        CHECK(z < 4 && bad == 0, "dropout: %lld zeros (want ~%.0f, %.2f se), "
              "%lld bad", (long long)zeros, rate * n, z, (long long)bad);
        if (k == 0)
            printf("%-5s dropout rate %.1f: %.4f zeroed (%.2f se)\n",
                   z < 4 && !bad ? "ok" : "FAIL", rate, (double)zeros / n, z);
        free(xs);
        free(yms);
        kiln_tensor_free(ym);
        kiln_tensor_free(mask);
        kiln_tensor_free(yt);
        /* Evaluation copies and reports a mask of ones. */
        kiln_tensor *e = kiln_dropout(xv, rate, 0, 11, 3, &mask);
        float *ev = malloc((size_t)n * 4), *xv_h = malloc((size_t)n * 4);
        kiln_tensor_read(e, ev, (size_t)n * 4);
        kiln_tensor_read(xc, xv_h, (size_t)n * 4);
        kiln_tensor_read(mask, m, (size_t)n * 4);
        bad = 0;
        for (int64_t i = 0; i < n; i++)
            bad += ev[i] != xv_h[i] || m[i] != 1;
        CHECK(bad == 0, "dropout eval: %lld elements differ", (long long)bad);
        free(ev);
        free(xv_h);
        kiln_tensor_free(e);
        kiln_tensor_free(mask);
        kiln_tensor_free(xc);
        kiln_tensor_free(xv);
        kiln_tensor_free(xt);
    }
    CHECK(memcmp(y, yr, (size_t)n * 4) == 0,
          "dropout differs from the reference");
    free(x);
    free(y);
    free(m);
    free(yr);
    health("dropout");
}

/* d sum(dropout(x) r) / dx = mask r: central differences on the
 * reference in f64 with the same seed, against the returned mask. */
static void gradcheck_dropout(void)
{
    int64_t shape[2] = {5, 7}, n = 35;
    double x[35], r[35], mask[35];
    harness_rng g = {99};
    for (int i = 0; i < n; i++) {
        x[i] = harness_uniform(&g, -2, 2);
        r[i] = harness_uniform(&g, -1, 1);
    }
    kiln_tensor *xt = kiln_tensor_from_data(ref, KILN_F64, 2, shape, x,
                                            sizeof x);
    kiln_tensor *mt = NULL;
    kiln_tensor *yt = kiln_dropout(xt, 0.4, 1, 5, 0, &mt);
    kiln_tensor_read(mt, mask, sizeof mask);
    kiln_tensor_free(yt);
    kiln_tensor_free(xt);
    kiln_tensor_free(mt);
    double h = 1e-6, max_err = 0, max_g = 0;
    for (int i = 0; i < n; i++) {
        double f[2];
        for (int s = 0; s < 2; s++) {
            double keep = x[i], y[35];
            x[i] = keep + (s ? -h : h);
            kiln_tensor *a = kiln_tensor_from_data(ref, KILN_F64, 2, shape, x,
                                                   sizeof x);
            kiln_tensor *b = kiln_dropout(a, 0.4, 1, 5, 0, NULL);
            kiln_tensor_read(b, y, sizeof y);
            kiln_tensor_free(a);
            kiln_tensor_free(b);
            x[i] = keep;
            f[s] = 0;
            for (int j = 0; j < n; j++)
                f[s] += y[j] * r[j];
        }
        double num = (f[0] - f[1]) / (2 * h);
        max_err = fmax(max_err, fabs(num - mask[i] * r[i]));
        max_g = fmax(max_g, fabs(num));
    }
    double rel = max_err / (max_g > 0 ? max_g : 1);
    printf("gradcheck dropout max_rel_err %.3g\n", rel);
    CHECK(rel < 1e-6, "gradcheck dropout: %g", rel);
}

/* ---- permutations ------------------------------------------------------------ */

static void test_permutation(void)
{
    static const int64_t sizes[] = {0, 1, 2, 17, 1000, 65537};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        int64_t n = sizes[k];
        kiln_tensor *a = kiln_random_permutation(dev, n, 1234);
        kiln_tensor *b = kiln_random_permutation(ref, n, 1234);
        kiln_tensor *c = kiln_random_permutation(dev, n, 1235);
        CHECK(a && b && c, "permutation %lld: %s", (long long)n,
              kiln_error_message(dev));
        int32_t *pa = calloc((size_t)n + 1, 4), *pb = calloc((size_t)n + 1, 4),
                *pc = calloc((size_t)n + 1, 4);
        char *seen = calloc((size_t)n + 1, 1);
        kiln_tensor_read(a, pa, (size_t)n * 4);
        kiln_tensor_read(b, pb, (size_t)n * 4);
        kiln_tensor_read(c, pc, (size_t)n * 4);
        int64_t bad = 0, fixed = 0, same_other = 0;
        for (int64_t i = 0; i < n; i++) {
            if (pa[i] < 0 || pa[i] >= n || seen[pa[i]]++)
                bad++;
            fixed += pa[i] == i;
            same_other += pa[i] == pc[i];
        }
        CHECK(bad == 0, "permutation %lld: not a permutation (%lld bad)",
              (long long)n, (long long)bad);
        CHECK(memcmp(pa, pb, (size_t)n * 4) == 0,
              "permutation %lld differs from the reference", (long long)n);
        if (n >= 1000)
            CHECK(fixed < 10 && same_other < 10, "permutation %lld looks "
                  "unshuffled: %lld fixed points, %lld equal to seed+1",
                  (long long)n, (long long)fixed, (long long)same_other);
        free(pa);
        free(pb);
        free(pc);
        free(seen);
        kiln_tensor_free(a);
        kiln_tensor_free(b);
        kiln_tensor_free(c);
    }
    printf("ok    permutations: sizes 0..65537, identical to the reference\n");
    health("permutation");
}

/* ---- categorical sampling ------------------------------------------------------- */

/* @rows identical rows of @c logits; frequencies of each class against
 * softmax(logits / T) within 4.5 binomial standard errors, and agreement
 * with the reference (a draw may differ only where u lands within
 * rounding of a class boundary). */
static void check_categorical(kiln_dtype t, int rows, int c,
                              const double *logits, double temp, int view)
{
    double *all = malloc((size_t)rows * c * sizeof *all);
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < c; k++) /* transposed: the base is [C, N] */
            all[view ? (size_t)k * rows + r : (size_t)r * c + k] = logits[k];
    int64_t shape[2] = {rows, c}, tshape[2] = {c, rows};
    kiln_context *ctxs[2] = {dev, ref};
    int32_t *s[2];
    for (int i = 0; i < 2; i++) {
        kiln_tensor *x64 = kiln_tensor_from_data(ctxs[i], KILN_F64, 2,
                                                 view ? tshape : shape, all,
                                                 (size_t)rows * c * 8);
        if (!x64) { /* no fp64 on the device: stage through f32 */
            kiln_clear_error(ctxs[i]);
            float *f = malloc((size_t)rows * c * 4);
            for (int64_t j = 0; j < (int64_t)rows * c; j++)
                f[j] = (float)all[j];
            x64 = kiln_tensor_from_data(ctxs[i], KILN_F32, 2,
                                        view ? tshape : shape, f,
                                        (size_t)rows * c * 4);
            free(f);
        }
        kiln_tensor *xt = kiln_cast(x64, t);
        kiln_tensor *xv = view ? kiln_transpose(xt, 0, 1) : xt;
        kiln_tensor *out = kiln_sample_categorical(xv, temp, 77, 5);
        s[i] = calloc((size_t)rows, 4);
        CHECK(out && kiln_tensor_read(out, s[i], (size_t)rows * 4) == KILN_OK,
              "categorical: %s", kiln_error_message(ctxs[i]));
        kiln_tensor_free(out);
        if (view)
            kiln_tensor_free(xv);
        kiln_tensor_free(xt);
        kiln_tensor_free(x64);
    }
    double mx = -INFINITY, sum = 0, *p = calloc((size_t)c, sizeof *p);
    int *count = calloc((size_t)c, sizeof *count), bad = 0, differ = 0;
    for (int k = 0; k < c; k++)
        mx = fmax(mx, logits[k] / temp);
    for (int k = 0; k < c; k++)
        sum += p[k] = exp(logits[k] / temp - mx);
    for (int r = 0; r < rows; r++) {
        if (s[0][r] < 0 || s[0][r] >= c)
            bad++;
        else
            count[s[0][r]]++;
        differ += s[0][r] != s[1][r];
    }
    double worst = 0;
    for (int k = 0; k < c; k++) {
        p[k] /= sum;
        double se = sqrt(rows * p[k] * (1 - p[k]));
        /* p = 0 or 1: the count must be exact. */
        double z = se > 0 ? fabs(count[k] - rows * p[k]) / se
                          : (count[k] == rows * p[k] ? 0 : INFINITY);
        worst = fmax(worst, z);
    }
    int ok = bad == 0 && worst < 4.5 && differ <= rows / 1000;
    printf("%-5s categorical %s %dx%d T=%g%s: worst class %.2f se, %d of %d "
           "differ from the reference\n", ok ? "ok" : "FAIL",
           kiln_dtype_name(t), rows, c, temp, view ? " (transposed)" : "",
           worst, differ, rows);
    CHECK(ok, "categorical %s %dx%d: %d out of range, worst %.2f se, %d "
          "differ", kiln_dtype_name(t), rows, c, bad, worst, differ);
    free(p);
    free(count);
    free(all);
    free(s[0]);
    free(s[1]);
}

static void test_categorical(void)
{
    double l5[5] = {1, 2, 0.5, -1, 1.5};
    double l300[300];
    for (int k = 0; k < 300; k++)
        l300[k] = sin(k * 0.37) * 2;
    double sure[4] = {-INFINITY, -INFINITY, 3, -INFINITY};
    for (int ti = 0; ti < (have_f64 ? 2 : 1); ti++) {
        kiln_dtype t = ti ? KILN_F64 : KILN_F32;
        check_categorical(t, 20000, 5, l5, 1.0, 0);
        check_categorical(t, 20000, 5, l5, 0.5, 1);
        check_categorical(t, 30000, 300, l300, 2.0, 0);
        check_categorical(t, 1000, 4, sure, 1.0, 0);
        check_categorical(t, 1, 1, l5, 1.0, 0);
    }
    health("categorical");
}

/* ---- argument errors ------------------------------------------------------------ */

static void test_errors(void)
{
    int64_t n = 8, s2[2] = {2, 3};
    kiln_tensor *i32 = kiln_tensor_new(dev, KILN_I32, 1, &n);
    kiln_tensor *f = kiln_tensor_new(dev, KILN_F32, 1, &n);
    kiln_tensor *m = kiln_tensor_new(dev, KILN_F32, 2, s2);
    kiln_fill(f, 0);
    kiln_fill(m, 0);
    struct { kiln_status got, want; const char *what; } cases[] = {
        {kiln_random_uniform(i32, 1, 0, 0, 1), KILN_ERROR_DTYPE,
         "uniform i32"},
        {kiln_random_uniform(f, 1, 0, 1, 1), KILN_ERROR_INVALID_ARGUMENT,
         "uniform lo == hi"},
        {kiln_random_normal(f, 1, 0, 0, -1), KILN_ERROR_INVALID_ARGUMENT,
         "normal std < 0"},
        {kiln_random_bernoulli(f, 1, 0, 1.5), KILN_ERROR_INVALID_ARGUMENT,
         "bernoulli p 1.5"},
        {kiln_random_uniform(NULL, 1, 0, 0, 1), KILN_ERROR_INVALID_ARGUMENT,
         "uniform NULL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CHECK(cases[i].got == cases[i].want, "%s: got %s", cases[i].what,
              kiln_status_string(cases[i].got));
        kiln_clear_error(dev);
    }
    kiln_tensor *r[5] = {
        kiln_dropout(f, 1.5, 1, 0, 0, NULL),
        kiln_dropout(i32, 0.5, 1, 0, 0, NULL),
        kiln_sample_categorical(m, 0, 0, 0),
        kiln_sample_categorical(f, 1, 0, 0),
        kiln_random_permutation(dev, -1, 0),
    };
    const kiln_status want[5] = {KILN_ERROR_INVALID_ARGUMENT, KILN_ERROR_DTYPE,
                                 KILN_ERROR_INVALID_ARGUMENT, KILN_ERROR_SHAPE,
                                 KILN_ERROR_INVALID_ARGUMENT};
    for (int i = 0; i < 5; i++) {
        kiln_clear_error(dev);
        kiln_tensor *again = NULL;
        switch (i) { /* re-run one at a time so each status is its own */
        case 0: again = kiln_dropout(f, 1.5, 1, 0, 0, NULL); break;
        case 1: again = kiln_dropout(i32, 0.5, 1, 0, 0, NULL); break;
        case 2: again = kiln_sample_categorical(m, 0, 0, 0); break;
        case 3: again = kiln_sample_categorical(f, 1, 0, 0); break;
        case 4: again = kiln_random_permutation(dev, -1, 0); break;
        }
        CHECK(!r[i] && !again && kiln_status_of(dev) == want[i],
              "error case %d: %s", i, kiln_error_message(dev));
        printf("  error as expected: %s\n", kiln_error_message(dev));
    }
    kiln_clear_error(dev);
    kiln_tensor_free(i32);
    kiln_tensor_free(f);
    kiln_tensor_free(m);
    health("errors");
}

int main(int argc, char **argv)
{
    const char *spec = harness_device(argc, argv);
    dev = harness_open(spec, 256);
    ref = harness_open("reference", 256);
    have_f64 = kiln_context_device(dev)->fp64;
    test_known_answers();
    test_against_reference();
    test_strided_views();
    test_moments();
    test_device_offset();
    test_dropout();
    gradcheck_dropout();
    test_permutation();
    test_categorical();
    test_errors();
    kiln_context_destroy(dev);
    kiln_context_destroy(ref);
    return harness_exit();
}
