/*
 * test_opencl_backend.c - what only the OpenCL backend does: report build
 * errors with the compiler's log, cache program binaries on disk (reuse,
 * and rebuild when a cache file is damaged), and replay recordings through
 * cl_khr_command_buffer where the device has it, or by re-enqueueing.
 *
 * Exits 77 (skipped) when no OpenCL device can be opened.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "kiln.h"
#include "opencl/cl_internal.h"

static int failures;

static void check(int ok, const char *what, const char *detail)
{
    printf("%s: %s%s%s\n", ok ? "ok" : "FAIL", what, detail ? ": " : "",
           detail ? detail : "");
    if (!ok)
        failures++;
}

static kiln_context *open_opencl(void)
{
    kiln_context_options o = {.device = "opencl"};
    kiln_context *ctx = kiln_context_create(&o);
    if (!ctx) {
        printf("FAIL: kiln_context_create returned NULL\n");
        exit(1);
    }
    if (kiln_status_of(ctx) == KILN_ERROR_NO_DEVICE) {
        printf("SKIP: %s\n", kiln_error_message(ctx));
        kiln_context_destroy(ctx);
        exit(77);
    }
    if (kiln_status_of(ctx) != KILN_OK) {
        printf("FAIL: opening opencl: %s\n", kiln_error_message(ctx));
        exit(1);
    }
    return ctx;
}

/* A source the compiler must reject, naming the undeclared identifier. */
static void test_build_error(void)
{
    kiln_context *ctx = open_opencl();
    const char *src = "__kernel void broken(__global float *x)\n"
                      "{\n    x[0] = kiln_no_such_identifier;\n}\n";
    kiln_status s = kiln_cl_build_program_for_test(ctx->queue, src,
                                                   "-cl-std=CL1.2");
    check(s == KILN_ERROR_KERNEL_BUILD, "syntax error gives KERNEL_BUILD",
          kiln_status_string(s));
    check(kiln_status_of(ctx) == KILN_ERROR_KERNEL_BUILD,
          "context holds KERNEL_BUILD", NULL);
    const char *msg = kiln_error_message(ctx);
    check(strstr(msg, "kiln_no_such_identifier") != NULL,
          "message carries the compiler's complaint", msg);
    check(strstr(msg, "opencl: building test (-cl-std=CL1.2) failed") != NULL,
          "message names the build and its options", NULL);
    kiln_clear_error(ctx);
    s = kiln_cl_build_program_for_test(
        ctx->queue, "__kernel void fine(__global float *x) { x[0] = 1; }",
        "-cl-std=CL1.2");
    check(s == KILN_OK, "a correct source builds", kiln_error_message(ctx));
    kiln_context_destroy(ctx);
}

/* Adds two small tensors on a fresh context; returns its statistics. */
static int add_once(kiln_context_stats *stats)
{
    kiln_context *ctx = open_opencl();
    int64_t shape[1] = {5};
    float a[5] = {1, 2, 3, 4, 5}, b[5] = {0.5f, -1, 10, 0, -4}, out[5] = {0};
    kiln_tensor *ta = kiln_tensor_from_data(ctx, KILN_F32, 1, shape, a,
                                            sizeof a);
    kiln_tensor *tb = kiln_tensor_from_data(ctx, KILN_F32, 1, shape, b,
                                            sizeof b);
    kiln_tensor *tc = kiln_add(ta, tb);
    kiln_status s = tc ? kiln_tensor_read(tc, out, sizeof out)
                       : kiln_status_of(ctx);
    int ok = s == KILN_OK;
    for (int i = 0; i < 5; i++)
        ok = ok && out[i] == a[i] + b[i];
    if (s != KILN_OK)
        printf("  error: %s\n", kiln_error_message(ctx));
    kiln_context_get_stats(ctx, stats);
    kiln_tensor_free(ta);
    kiln_tensor_free(tb);
    kiln_tensor_free(tc);
    kiln_context_destroy(ctx);
    return ok;
}

/* Applies @fn to every cache file in @dir; returns how many there were. */
static int for_each_clbin(const char *dir, void (*fn)(const char *path))
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 6, ".clbin") != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (fn)
            fn(path);
        n++;
    }
    closedir(d);
    return n;
}

static void overwrite_with_garbage(const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    for (int i = 0; i < 1000; i++)
        fputc((i * 37 + 11) & 0xff, f);
    fclose(f);
}

static void truncate_half(const char *path)
{
    FILE *f = fopen(path, "rb");
    long n = 0;
    if (f && fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    if (f)
        fclose(f);
    if (n > 1 && truncate(path, n / 2) != 0)
        printf("  could not truncate %s\n", path);
}

static void remove_file(const char *path)
{
    unlink(path);
}

static void test_disk_cache(void)
{
    char dir[] = "/tmp/kiln-cl-cache-XXXXXX";
    char line[128];
    kiln_context_stats st;
    if (!mkdtemp(dir)) {
        check(0, "mkdtemp", NULL);
        return;
    }
    setenv("KILN_CACHE_DIR", dir, 1);

    int ok = add_once(&st);
    snprintf(line, sizeof line, "built %llu, cached %llu",
             (unsigned long long)st.programs_built,
             (unsigned long long)st.programs_cached);
    check(ok, "first context adds correctly", NULL);
    check(st.programs_built > 0 && st.programs_cached == 0,
          "first context builds from source", line);
    int files = for_each_clbin(dir, NULL);
    snprintf(line, sizeof line, "%d files", files);
    check(files > 0, "binaries written to the cache directory", line);

    ok = add_once(&st);
    snprintf(line, sizeof line, "built %llu, cached %llu",
             (unsigned long long)st.programs_built,
             (unsigned long long)st.programs_cached);
    check(ok, "second context adds correctly", NULL);
    check(st.programs_built == 0 && st.programs_cached > 0,
          "second context loads from the cache", line);

    for_each_clbin(dir, overwrite_with_garbage);
    ok = add_once(&st);
    snprintf(line, sizeof line, "built %llu, cached %llu",
             (unsigned long long)st.programs_built,
             (unsigned long long)st.programs_cached);
    check(ok, "context with garbage cache files adds correctly", NULL);
    check(st.programs_built > 0 && st.programs_cached == 0,
          "garbage cache files are ignored and rebuilt", line);

    for_each_clbin(dir, truncate_half);
    ok = add_once(&st);
    snprintf(line, sizeof line, "built %llu, cached %llu",
             (unsigned long long)st.programs_built,
             (unsigned long long)st.programs_cached);
    check(ok && st.programs_built > 0 && st.programs_cached == 0,
          "truncated cache files are ignored and rebuilt", line);

    ok = add_once(&st);
    snprintf(line, sizeof line, "built %llu, cached %llu",
             (unsigned long long)st.programs_built,
             (unsigned long long)st.programs_cached);
    check(ok && st.programs_built == 0 && st.programs_cached > 0,
          "rebuilt binaries are cached again", line);

    for_each_clbin(dir, remove_file);
    rmdir(dir);
    unsetenv("KILN_CACHE_DIR");
}

/* Does the context's device list cl_khr_command_buffer? */
static int lists_command_buffer(kiln_context *ctx)
{
    cl_queue *q = (cl_queue *)ctx->queue;
    char ext[8192] = "";
    clGetDeviceInfo(q->device, CL_DEVICE_EXTENSIONS, sizeof ext - 1, ext,
                    NULL);
    const char *name = "cl_khr_command_buffer";
    size_t n = strlen(name);
    for (const char *p = ext; (p = strstr(p, name)) != NULL; p += n)
        if ((p == ext || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return 1;
    return 0;
}

/* Replay round @round's inputs: small integers, so every result of the
 * graph is exact in f32 whatever the summation order. */
static void graph_inputs(int round, float *x, float *y, float *w)
{
    for (int i = 0; i < 16; i++) {
        x[i] = (float)((i * 7 + round * 3) % 11 - 5);
        y[i] = (float)((i * 5 + round) % 7 - 3);
    }
    for (int i = 0; i < 12; i++)
        w[i] = (float)((i * 3 + round * 2) % 5 - 2);
}

/* The graph on the host: r2 = relu(x + y) + x, m = r2 @ w, total = sum(m). */
static void graph_expect(const float *x, const float *y, const float *w,
                         float *r2, float *m, float *total)
{
    for (int i = 0; i < 16; i++)
        r2[i] = (x[i] + y[i] > 0 ? x[i] + y[i] : 0) + x[i];
    *total = 0;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) {
            float acc = 0;
            for (int k = 0; k < 4; k++)
                acc += r2[i * 4 + k] * w[k * 3 + j];
            m[i * 3 + j] = acc;
            *total += acc;
        }
}

/* Reads @n floats of @t and compares them with @want exactly. */
static int same(kiln_tensor *t, const float *want, int n)
{
    float got[16];
    if (kiln_tensor_read(t, got, (size_t)n * sizeof *got) != KILN_OK)
        return 0;
    return memcmp(got, want, (size_t)n * sizeof *got) == 0;
}

/*
 * Records add, relu, add (the same kernel object as the first add, other
 * arguments), matmul and sum; replays 3 times after rewriting the inputs,
 * with an eager add between replays (it re-sets the cached kernel's
 * arguments) and two replays back to back (the second finds the first
 * still pending).  @mode: KILN_CL_COMMAND_BUFFER for the context, NULL =
 * unset.  @no_simultaneous: make the queue believe the device lacks
 * simultaneous use, so back-to-back enqueues get refused and fall back.
 * @keep_past_destroy: destroy the context before freeing the recording.
 */
static void test_replay_path(const char *mode, int no_simultaneous,
                             int keep_past_destroy)
{
    char what[160], detail[256];
    float x[16], y[16], w[12], r2[16], m[12], total, eager[16];
    if (mode)
        setenv("KILN_CL_COMMAND_BUFFER", mode, 1);
    else
        unsetenv("KILN_CL_COMMAND_BUFFER");
    kiln_context *ctx = open_opencl();
    unsetenv("KILN_CL_COMMAND_BUFFER");
    if (no_simultaneous)
        ((cl_queue *)ctx->queue)->cmdbuf_simultaneous = 0;
    snprintf(what, sizeof what, "KILN_CL_COMMAND_BUFFER=%s%s",
             mode ? mode : "(unset)",
             no_simultaneous ? ", no simultaneous use" : "");
    int listed = lists_command_buffer(ctx);

    graph_inputs(0, x, y, w);
    kiln_tensor *tx = kiln_tensor_from_data(ctx, KILN_F32, 2,
                                            (int64_t[]){4, 4}, x, sizeof x);
    kiln_tensor *ty = kiln_tensor_from_data(ctx, KILN_F32, 2,
                                            (int64_t[]){4, 4}, y, sizeof y);
    kiln_tensor *tw = kiln_tensor_from_data(ctx, KILN_F32, 2,
                                            (int64_t[]){4, 3}, w, sizeof w);
    kiln_status s = kiln_recording_begin(ctx);
    kiln_tensor *ts = kiln_add(tx, ty);
    kiln_tensor *tr = kiln_relu(ts);
    kiln_tensor *tr2 = kiln_add(tr, tx);
    kiln_tensor *tm = kiln_matmul(tr2, tw);
    kiln_tensor *tt = kiln_sum(tm, 0, NULL, 0);
    kiln_recording *rec = kiln_recording_end(ctx);
    snprintf(detail, sizeof detail, "%s", kiln_error_message(ctx));
    check(s == KILN_OK && rec && tt && kiln_recording_dispatches(rec) >= 5,
          "recording of add, relu, add, matmul, sum", detail);
    if (!rec || !tt)
        goto out;

    /* The backend's side of @rec: the newest of the queue's recordings. */
    const char *why = "";
    int uses = kiln_cl_recording_uses_command_buffer(
        ((cl_queue *)ctx->queue)->live, &why);
    printf("  %s: device %s cl_khr_command_buffer; replay path: %s%s%s\n",
           what, listed ? "lists" : "does not list",
           uses ? "command buffer" : "re-enqueue", *why ? ", " : "", why);
    if (mode && strcmp(mode, "0") == 0)
        check(!uses && strstr(why, "KILN_CL_COMMAND_BUFFER=0"),
              "=0 replays by re-enqueueing", why);
    else if (mode && listed)
        check(uses, "=1 uses the command buffer where the device lists it",
              why);
    else if (!mode) {
        /* Default: where listed, except PoCL's draft (opt-in there). */
        int pocl = strstr(kiln_context_device(ctx)->platform,
                          "Portable Computing Language") != NULL;
        check(uses == (listed && !pocl),
              "default: command buffer where listed, PoCL opt-in", why);
    }

    for (int round = 1; round <= 3; round++) {
        graph_inputs(round, x, y, w);
        graph_expect(x, y, w, r2, m, &total);
        int ok = kiln_tensor_write(tx, x, sizeof x) == KILN_OK &&
                 kiln_tensor_write(ty, y, sizeof y) == KILN_OK &&
                 kiln_tensor_write(tw, w, sizeof w) == KILN_OK;
        ok = ok && kiln_recording_replay(rec) == KILN_OK;
        for (int again = 0; round == 2 && again < 3; again++)
            /* back to back: the previous one may still be pending */
            ok = ok && kiln_recording_replay(rec) == KILN_OK;
        /* An eager add on the cached kernel the recording's adds came from. */
        kiln_tensor *te = kiln_add(ty, ty);
        for (int i = 0; i < 16; i++)
            eager[i] = y[i] + y[i];
        ok = ok && te && same(te, eager, 16) && same(tr2, r2, 16) &&
             same(tm, m, 12) && same(tt, &total, 1);
        kiln_tensor_free(te);
        snprintf(detail, sizeof detail, "%s, replay %d%s", what, round,
                 ok ? "" : kiln_error_message(ctx));
        check(ok, "replay results exact", detail);
    }
    check(kiln_status_of(ctx) == KILN_OK, "no stray error",
          kiln_error_message(ctx));
out:
    if (keep_past_destroy) {
        kiln_context_destroy(ctx); /* the queue frees the recording */
        kiln_recording_free(rec);
    } else {
        kiln_recording_free(rec);
    }
    kiln_tensor *all[] = {tx, ty, tw, ts, tr, tr2, tm, tt};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        kiln_tensor_free(all[i]);
    if (!keep_past_destroy)
        kiln_context_destroy(ctx);
}

int main(void)
{
    test_build_error();
    test_disk_cache();
    test_replay_path("0", 0, 0);
    test_replay_path("1", 0, 0);
    test_replay_path(NULL, 0, 0);
    test_replay_path("1", 1, 1);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
