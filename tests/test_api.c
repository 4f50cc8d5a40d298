/*
 * test_api.c - tensors, views, exact edge-case semantics, errors, guards,
 * recording and device selection, on the device under test.
 *
 * usage: test_api --device SPEC
 */
#include "harness.h"
#include "internal.h" /* guard corruption and allocation-failure injection */
#include "tensor.h"

static kiln_context *ctx;

static kiln_tensor *f32(int ndim, const int64_t *shape, const float *v)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    return kiln_tensor_from_data(ctx, KILN_F32, ndim, shape, v, n * 4);
}

static int read_f32(kiln_tensor *t, float *out, size_t n)
{
    return kiln_tensor_read(t, out, n * 4) == KILN_OK;
}

static void expect_error(kiln_status want, const char *needle, const char *what)
{
    kiln_status got = kiln_status_of(ctx);
    const char *msg = kiln_error_message(ctx);
    CHECK(got == want, "%s: status %s, expected %s (%s)", what,
          kiln_status_string(got), kiln_status_string(want), msg);
    CHECK(strstr(msg, needle) != NULL, "%s: message '%s' lacks '%s'", what,
          msg, needle);
    printf("error ok: %s -> %s\n", what, msg);
    kiln_clear_error(ctx);
}

static void test_roundtrip(void)
{
    int64_t shape[3] = {2, 3, 5};
    float v[30];
    for (int i = 0; i < 30; i++)
        v[i] = (float)i * 0.5f - 3;
    kiln_tensor *t = f32(3, shape, v);
    float back[30] = {0};
    CHECK(t && read_f32(t, back, 30) && memcmp(v, back, sizeof v) == 0,
          "f32 round trip");
    int32_t iv[4] = {INT32_MIN, -1, 0, INT32_MAX}, ib[4];
    kiln_tensor *ti = kiln_tensor_from_data(ctx, KILN_I32, 1, (int64_t[]){4},
                                            iv, sizeof iv);
    CHECK(ti && kiln_tensor_read(ti, ib, sizeof ib) == KILN_OK &&
              memcmp(iv, ib, sizeof iv) == 0, "i32 round trip");
    double dv[2] = {1.0 / 3, -1e300}, db[2];
    kiln_tensor *td = kiln_tensor_from_data(ctx, KILN_F64, 1, (int64_t[]){2},
                                            dv, sizeof dv);
    CHECK(td && kiln_tensor_read(td, db, sizeof db) == KILN_OK &&
              memcmp(dv, db, sizeof dv) == 0, "f64 round trip");
    /* 0-D scalars and empty tensors. */
    float s = 4.25f, sb = 0;
    kiln_tensor *sc = kiln_tensor_from_data(ctx, KILN_F32, 0, NULL, &s, 4);
    kiln_tensor *sq = kiln_mul(sc, sc);
    CHECK(sq && kiln_tensor_ndim(sq) == 0 && read_f32(sq, &sb, 1) &&
              sb == 4.25f * 4.25f, "0-D scalar product %g", sb);
    kiln_tensor *e = kiln_tensor_new(ctx, KILN_F32, 2, (int64_t[]){0, 3});
    kiln_tensor *e2 = kiln_add(e, e);
    kiln_tensor *es = kiln_sum(e, 0, NULL, 0);
    float zero = -1;
    CHECK(e2 && kiln_tensor_numel(e2) == 0, "empty + empty is empty");
    CHECK(es && read_f32(es, &zero, 1) && zero == 0, "sum of empty is 0");
    kiln_tensor *tt[] = {t, ti, td, sc, sq, e, e2, es};
    for (size_t i = 0; i < sizeof tt / sizeof *tt; i++)
        kiln_tensor_free(tt[i]);
}

static void test_views(void)
{
    float v[24], out[24];
    for (int i = 0; i < 24; i++)
        v[i] = (float)i;
    kiln_tensor *t = f32(3, (int64_t[]){2, 3, 4}, v);
    kiln_tensor *r = kiln_reshape(t, 2, (int64_t[]){-1, 6});
    CHECK(r && kiln_tensor_dim(r, 0) == 4 && kiln_tensor_dim(r, 1) == 6 &&
              kiln_tensor_is_contiguous(r), "reshape infers -1");
    kiln_tensor *p = kiln_permute(t, (int[]){2, 0, 1}); /* [4, 2, 3] */
    CHECK(p && !kiln_tensor_is_contiguous(p) && kiln_tensor_dim(p, 0) == 4,
          "permute is a strided view");
    CHECK(p && read_f32(p, out, 24) && out[0] == 0 && out[1] == 4 &&
              out[6] == 1 && out[23] == 23, "permute reads in logical order");
    kiln_tensor *s = kiln_slice(t, -1, -3, 4, 2); /* columns 1 and 3 */
    CHECK(s && kiln_tensor_dim(s, 2) == 2 && read_f32(s, out, 12) &&
              out[0] == 1 && out[1] == 3 && out[2] == 5 && out[11] == 23,
          "slice with negative start and step 2");
    kiln_tensor *rp = kiln_reshape(p, 1, (int64_t[]){24}); /* copies */
    CHECK(rp && read_f32(rp, out, 24) && out[1] == 4,
          "reshape of a strided view copies in logical order");
    kiln_tensor *row = f32(1, (int64_t[]){4}, v);
    kiln_tensor *b = kiln_broadcast_to(row, 3, (int64_t[]){2, 3, 4});
    CHECK(b && read_f32(b, out, 24) && out[4] == 0 && out[23] == 3,
          "broadcast_to repeats with stride 0");
    /* A strided write lands only on the view's elements. */
    float two[6] = {-1, -2, -3, -4, -5, -6};
    kiln_tensor *col = kiln_slice(t, 2, 0, 1, 1); /* [2, 3, 1] */
    CHECK(kiln_tensor_write(col, two, sizeof two) == KILN_OK &&
              read_f32(t, out, 24) && out[0] == -1 && out[1] == 1 &&
              out[4] == -2 && out[20] == -6, "write through a strided view");
    kiln_tensor *tt[] = {t, r, p, s, rp, row, b, col};
    for (size_t i = 0; i < sizeof tt / sizeof *tt; i++)
        kiln_tensor_free(tt[i]);
}

/* Semantics the contract fixes exactly, whatever the backend. */
static void test_exact_semantics(void)
{
    int32_t a[5] = {7, -7, INT32_MIN, 5, 0}, b[5] = {2, 2, -1, 0, 0}, q[5];
    kiln_tensor *ta = kiln_tensor_from_data(ctx, KILN_I32, 1, (int64_t[]){5},
                                            a, sizeof a);
    kiln_tensor *tb = kiln_tensor_from_data(ctx, KILN_I32, 1, (int64_t[]){5},
                                            b, sizeof b);
    kiln_tensor *tq = kiln_div(ta, tb);
    CHECK(tq && kiln_tensor_read(tq, q, sizeof q) == KILN_OK && q[0] == 3 &&
              q[1] == -3 && q[2] == INT32_MIN && q[3] == 0 && q[4] == 0,
          "integer division: truncation, INT_MIN/-1, x/0 = 0 (%d %d %d %d %d)",
          q[0], q[1], q[2], q[3], q[4]);
    float f[6] = {NAN, 3e9f, -3e9f, 2.9f, -2.9f, INFINITY};
    int32_t c[6];
    kiln_tensor *tf = f32(1, (int64_t[]){6}, f);
    kiln_tensor *tc = kiln_cast(tf, KILN_I32);
    CHECK(tc && kiln_tensor_read(tc, c, sizeof c) == KILN_OK && c[0] == 0 &&
              c[1] == INT32_MAX && c[2] == INT32_MIN && c[3] == 2 &&
              c[4] == -2 && c[5] == INT32_MAX,
          "float to int: NaN -> 0, saturation, truncation");
    float x[4] = {NAN, 1, -1000, 1000}, y[4] = {0, NAN, 0, 0}, o[4];
    kiln_tensor *tx = f32(1, (int64_t[]){4}, x), *ty = f32(1, (int64_t[]){4}, y);
    kiln_tensor *mx = kiln_maximum(tx, ty);
    CHECK(mx && read_f32(mx, o, 4) && isnan(o[0]) && isnan(o[1]) && o[2] == 0 &&
              o[3] == 1000, "maximum propagates NaN");
    kiln_tensor *sg = kiln_sigmoid(tx);
    CHECK(sg && read_f32(sg, o, 4) && o[2] == 0 && o[3] == 1,
          "sigmoid saturates without NaN: %g %g", o[2], o[3]);
    /* The course's worked example: E(w) = 3(w-2)^2 + 5 at w = 5 is 32. */
    double w = 5, e;
    kiln_tensor *tw = kiln_tensor_from_data(ctx, KILN_F64, 0, NULL, &w, 8);
    double two = 2, three = 3, five = 5;
    kiln_tensor *k2 = kiln_tensor_from_data(ctx, KILN_F64, 0, NULL, &two, 8);
    kiln_tensor *k3 = kiln_tensor_from_data(ctx, KILN_F64, 0, NULL, &three, 8);
    kiln_tensor *k5 = kiln_tensor_from_data(ctx, KILN_F64, 0, NULL, &five, 8);
    kiln_tensor *d = kiln_sub(tw, k2), *sq = kiln_square(d);
    kiln_tensor *m = kiln_mul(k3, sq), *te = kiln_add(m, k5);
    CHECK(te && kiln_tensor_read(te, &e, 8) == KILN_OK && e == 32.0,
          "E(5) = 32 in f64 (got %.17g)", e);
    kiln_tensor *tt[] = {ta, tb, tq, tf, tc, tx, ty, mx, sg, tw, k2, k3, k5,
                         d, sq, m, te};
    for (size_t i = 0; i < sizeof tt / sizeof *tt; i++)
        kiln_tensor_free(tt[i]);
}

/* Hand-computed values: these make the reference itself testable. */
static void test_known_values(void)
{
    float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, o[4];
    kiln_tensor *ta = f32(2, (int64_t[]){2, 2}, a);
    kiln_tensor *tb = f32(2, (int64_t[]){2, 2}, b);
    kiln_tensor *c = kiln_matmul(ta, tb);
    CHECK(c && read_f32(c, o, 4) && o[0] == 19 && o[1] == 22 && o[2] == 43 &&
              o[3] == 50, "[[1,2],[3,4]] x [[5,6],[7,8]] = [[19,22],[43,50]]");
    kiln_tensor *ct = kiln_gemm(ta, 1, tb, 1, 2.0, 0, NULL); /* 2 A^T B^T */
    CHECK(ct && read_f32(ct, o, 4) && o[0] == 2 * 23 && o[1] == 2 * 31 &&
              o[2] == 2 * 34 && o[3] == 2 * 46, "2 A^T B^T");
    kiln_tensor *s0 = kiln_sum(ta, 1, (int[]){0}, 0);
    kiln_tensor *m1 = kiln_max(ta, 1, (int[]){-1}, 1);
    kiln_tensor *am = kiln_argmax(tb, 0, 0);
    int32_t idx[2] = {-1, -1};
    CHECK(s0 && read_f32(s0, o, 2) && o[0] == 4 && o[1] == 6, "column sums");
    CHECK(m1 && kiln_tensor_dim(m1, 1) == 1 && read_f32(m1, o, 2) &&
              o[0] == 2 && o[1] == 4, "row maxima, keepdims");
    CHECK(am && kiln_tensor_dtype(am) == KILN_I32 &&
              kiln_tensor_read(am, idx, sizeof idx) == KILN_OK && idx[0] == 1 &&
              idx[1] == 1, "argmax down columns");
    kiln_tensor *tt[] = {ta, tb, c, ct, s0, m1, am};
    for (size_t i = 0; i < sizeof tt / sizeof *tt; i++)
        kiln_tensor_free(tt[i]);
}

static void test_errors(void)
{
    float v[12] = {0};
    kiln_tensor *a = f32(2, (int64_t[]){2, 3}, v);
    kiln_tensor *b = f32(1, (int64_t[]){4}, v);
    kiln_tensor *r = kiln_add(a, b);
    CHECK(r == NULL, "mismatched add returns NULL");
    expect_error(KILN_ERROR_SHAPE, "[2, 3] and [4]", "add [2,3] + [4]");

    /* Sticky: the first error stays, NULL propagates silently. */
    kiln_add(a, b);
    kiln_tensor *n1 = kiln_relu(kiln_add(a, b));
    CHECK(n1 == NULL, "NULL propagates through relu");
    kiln_tensor *bad = kiln_tensor_new(ctx, KILN_F32, 1, (int64_t[]){-1});
    CHECK(bad == NULL && strstr(kiln_error_message(ctx), "kiln_add"),
          "the first error is kept: %s", kiln_error_message(ctx));
    kiln_clear_error(ctx);

    kiln_tensor *i = kiln_tensor_new(ctx, KILN_I32, 1, (int64_t[]){4});
    CHECK(kiln_add(b, i) == NULL, "f32 + i32 refused");
    expect_error(KILN_ERROR_DTYPE, "f32 and i32", "f32 + i32");
    CHECK(kiln_exp(i) == NULL, "exp of i32 refused");
    expect_error(KILN_ERROR_DTYPE, "kiln_exp", "exp(i32)");
    CHECK(kiln_mean(i, 0, NULL, 0) == NULL, "mean of i32 refused");
    expect_error(KILN_ERROR_DTYPE, "kiln_mean", "mean(i32)");
    CHECK(kiln_tensor_write(a, v, 5) == KILN_ERROR_SHAPE, "short write");
    expect_error(KILN_ERROR_SHAPE, "5 bytes given", "write 5 bytes");
    CHECK(kiln_sum(a, 1, (int[]){2}, 0) == NULL, "axis out of range");
    expect_error(KILN_ERROR_INVALID_ARGUMENT, "axis 2", "sum axis 2");
    CHECK(kiln_matmul(a, a) == NULL, "matmul [2,3] x [2,3]");
    expect_error(KILN_ERROR_SHAPE, "inner dimensions", "matmul inner dims");
    CHECK(kiln_permute(a, (int[]){0, 0}) == NULL, "bad permutation");
    expect_error(KILN_ERROR_INVALID_ARGUMENT, "permutation", "permute 0,0");
    CHECK(kiln_reshape(a, 1, (int64_t[]){5}) == NULL, "reshape 6 -> 5");
    expect_error(KILN_ERROR_SHAPE, "cannot view", "reshape 6 -> 5");
    int64_t seven[7] = {1, 1, 1, 1, 1, 1, 1};
    CHECK(kiln_tensor_new(ctx, KILN_F32, 7, seven) == NULL, "7-D refused");
    expect_error(KILN_ERROR_SHAPE, "7 dimensions", "7-D tensor");
    CHECK(kiln_tensor_new(ctx, KILN_F32, 2, (int64_t[]){65536, 65536}) == NULL,
          "2^32 elements refused");
    expect_error(KILN_ERROR_SHAPE, "2^31", "huge tensor");
    CHECK(kiln_tensor_new(ctx, (kiln_dtype)9, 1, (int64_t[]){1}) == NULL,
          "unknown dtype refused");
    expect_error(KILN_ERROR_DTYPE, "unknown dtype", "dtype 9");
    kiln_tensor *empty = kiln_tensor_new(ctx, KILN_F32, 1, (int64_t[]){0});
    CHECK(kiln_argmax(empty, 0, 0) == NULL, "argmax of an empty axis");
    expect_error(KILN_ERROR_SHAPE, "empty", "argmax of empty");
    kiln_tensor_free(empty);
    CHECK(kiln_add(NULL, a) == NULL, "NULL argument");
    expect_error(KILN_ERROR_INVALID_ARGUMENT, "argument 1 is NULL", "add(NULL)");
    CHECK(kiln_add(NULL, NULL) == NULL && kiln_tensor_read(NULL, v, 4) ==
              KILN_ERROR_INVALID_ARGUMENT, "all-NULL calls are harmless");
    kiln_context *other = kiln_context_create(
        &(kiln_context_options){.device = "reference"});
    kiln_tensor *o = kiln_tensor_new(other, KILN_F32, 2, (int64_t[]){2, 3});
    CHECK(kiln_add(a, o) == NULL, "tensors of two contexts refused");
    expect_error(KILN_ERROR_INVALID_ARGUMENT, "different contexts",
                 "cross-context add");
    kiln_tensor_free(o);
    kiln_context_destroy(other);
    kiln_tensor_free(a);
    kiln_tensor_free(b);
    kiln_tensor_free(i);
}

/* Out of device memory loses nothing: earlier tensors keep their data. */
static void test_out_of_memory(void)
{
    float v[4] = {1, 2, 3, 4}, back[4];
    kiln_tensor *keep = f32(1, (int64_t[]){4}, v);
    ctx->alloc.fail_countdown = 1;
    /* Bigger than a block: needs a new one, which the injection fails. */
    kiln_tensor *big = kiln_tensor_new(ctx, KILN_F32, 1,
                                       (int64_t[]){(int64_t)(KILN_BLOCK_SIZE / 4) + 1});
    CHECK(big == NULL, "allocation failure returns NULL");
    expect_error(KILN_ERROR_OUT_OF_DEVICE_MEMORY, "shape [16777217]",
                 "injected out of device memory");
    ctx->alloc.fail_countdown = 0;
    CHECK(read_f32(keep, back, 4) && back[3] == 4, "earlier tensor intact");
    kiln_tensor_free(keep);
}

static void test_guards(void)
{
    float v[5] = {1, 2, 3, 4, 5};
    kiln_tensor *t = f32(1, (int64_t[]){5}, v);
    CHECK(kiln_check_guards(ctx) == KILN_OK, "guards intact");
    /* Simulate a kernel writing one element past the end. */
    kiln_allocation *al = t->storage->alloc;
    float stray = 9;
    ctx->queue->vt->write(ctx->queue, al->block, al->offset + al->size, &stray,
                          4);
    CHECK(kiln_check_guards(ctx) == KILN_ERROR_CORRUPT,
          "an out-of-bounds write is caught");
    expect_error(KILN_ERROR_CORRUPT, "out-of-bounds", "guard check");
    float pattern[1];
    memset(pattern, KILN_GUARD_BYTE, sizeof pattern);
    ctx->queue->vt->write(ctx->queue, al->block, al->offset + al->size,
                          pattern, 4);
    kiln_tensor_free(t);
}

static void test_recording(void)
{
    float v[6] = {-1, 2, -3, 4, -5, 6}, out[6];
    kiln_tensor *x = f32(1, (int64_t[]){6}, v);
    CHECK(kiln_recording_begin(ctx) == KILN_OK, "recording begins");
    /* A temporary freed mid-capture: the recording keeps its bytes. */
    kiln_tensor *s2 = kiln_add(x, x);
    kiln_tensor *y = kiln_relu(s2);
    kiln_tensor *z = kiln_sum(y, 0, NULL, 0);
    kiln_tensor_free(s2);
    CHECK(kiln_tensor_read(y, out, sizeof out) != KILN_OK,
          "reading while recording is refused");
    kiln_clear_error(ctx);
    kiln_recording *rec = kiln_recording_end(ctx);
    CHECK(rec && kiln_recording_dispatches(rec) == 3, "3 kernels recorded");
    /* Would take s2's bytes if the recording did not keep them. */
    kiln_tensor *intruder = kiln_tensor_new(ctx, KILN_F32, 1, (int64_t[]){6});
    kiln_fill(intruder, 99);
    for (int round = 1; round <= 3; round++) {
        for (int i = 0; i < 6; i++)
            v[i] = (float)(round * (i % 2 ? 1 : -1) * (i + 1));
        kiln_tensor_write(x, v, sizeof v);
        CHECK(kiln_recording_replay(rec) == KILN_OK, "replay %d", round);
        float s = 0;
        CHECK(read_f32(z, &s, 1) && s == round * 2.0f * (2 + 4 + 6),
              "replay %d sums to %g", round, s);
    }
    CHECK(read_f32(intruder, out, 6) && out[0] == 99 && out[5] == 99,
          "a tensor allocated after the capture is not overwritten by "
          "replays (%g)", out[0]);
    kiln_recording_free(rec);
    kiln_tensor_free(intruder);
    kiln_tensor_free(x);
    kiln_tensor_free(y);
    kiln_tensor_free(z);
}

static void test_events(void)
{
    int64_t shape[2] = {64, 64};
    kiln_tensor *a = kiln_tensor_new(ctx, KILN_F32, 2, shape);
    kiln_fill(a, 0.5);
    kiln_tensor *c = kiln_matmul(a, a);
    kiln_event *ev = kiln_event_record(ctx);
    int q = kiln_event_query(ev);
    CHECK(ev && (q == 0 || q == 1), "event recorded, query %d", q);
    CHECK(kiln_event_wait(ev) == KILN_OK && kiln_event_query(ev) == 1,
          "event completes after wait");
    float o[4096];
    CHECK(read_f32(c, o, 4096) && o[0] == 16 && o[4095] == 16,
          "work before the event is done (%g)", o[0]);
    kiln_event_free(ev);
    kiln_tensor_free(a);
    kiln_tensor_free(c);
}

static void test_blocks(void)
{
    kiln_context_stats before, after;
    kiln_context_get_stats(ctx, &before);
    kiln_tensor *ts[100];
    for (int i = 0; i < 100; i++)
        ts[i] = kiln_tensor_new(ctx, KILN_F32, 1, (int64_t[]){100 + i});
    kiln_context_get_stats(ctx, &after);
    CHECK(after.device_blocks == before.device_blocks &&
              after.live_allocations == before.live_allocations + 100,
          "100 tensors share the existing block (%llu -> %llu blocks)",
          (unsigned long long)before.device_blocks,
          (unsigned long long)after.device_blocks);
    for (int i = 0; i < 100; i++)
        kiln_tensor_free(ts[i]);
}

static void test_device_selection(void)
{
    int n = kiln_device_list(NULL, 0);
    kiln_device_info *d = calloc((size_t)n, sizeof *d);
    CHECK(kiln_device_list(d, n) == n && n >= 1, "device list");
    CHECK(d[n - 1].backend == KILN_BACKEND_REFERENCE, "reference is last");
    char why[256];
    CHECK(kiln_device_select(d, n, "ref", why, sizeof why) == n - 1,
          "'ref' selects the reference");
    CHECK(kiln_device_select(d, n, "reference:0", why, sizeof why) == n - 1,
          "'reference:0' selects the reference");
    CHECK(kiln_device_select(d, n, "nosuchdevice", why, sizeof why) == -1 &&
              strstr(why, "nosuchdevice"), "unknown name: %s", why);
    CHECK(kiln_device_select(d, n, "metal:0", why, sizeof why) == -1 &&
              strstr(why, "unknown backend"), "unknown backend: %s", why);
    int a = kiln_device_select(d, n, "auto", why, sizeof why);
    CHECK(a >= 0 && d[a].usable, "auto picks a usable device");
    for (int i = 0; i < n; i++)
        if (d[i].usable)
            CHECK(d[i].type >= d[a].type, "auto prefers %s over %s",
                  d[a].name, d[i].name);
    free(d);
}

int main(int argc, char **argv)
{
    ctx = harness_open(harness_device(argc, argv), 64);
    test_roundtrip();
    test_views();
    test_exact_semantics();
    test_known_values();
    test_errors();
    test_out_of_memory();
    test_guards();
    test_recording();
    test_events();
    test_blocks();
    test_device_selection();
    CHECK(kiln_status_of(ctx) == KILN_OK, "no stray error: %s",
          kiln_error_message(ctx));
    CHECK(kiln_validation_message_count(ctx) == 0, "no validation messages");
    /* Destroying with a live tensor and a live recording, then using and
     * freeing them, must be safe and must not report success. */
    kiln_tensor *late = kiln_tensor_new(ctx, KILN_F32, 1, (int64_t[]){3});
    kiln_recording_begin(ctx);
    kiln_fill(late, 1);
    kiln_recording *rec = kiln_recording_end(ctx);
    CHECK(rec != NULL, "a recording to outlive its context");
    kiln_context_destroy(ctx);
    float v[3] = {7, 7, 7};
    CHECK(kiln_tensor_read(late, v, sizeof v) == KILN_ERROR_NO_DEVICE &&
              v[0] == 7, "reading after the context is destroyed fails");
    CHECK(kiln_tensor_write(late, v, sizeof v) == KILN_ERROR_NO_DEVICE,
          "writing after the context is destroyed fails");
    CHECK(kiln_recording_replay(rec) == KILN_ERROR_NO_DEVICE,
          "replaying after the context is destroyed fails");
    CHECK(kiln_validation_message_count(ctx) == 0,
          "destroying with a live recording is clean (%s)",
          kiln_error_message(ctx));
    kiln_recording_free(rec);
    kiln_tensor_free(late);
    return harness_exit();
}
