/*
 * test_opencl_backend.c - what only the OpenCL backend does: report build
 * errors with the compiler's log, and cache program binaries on disk
 * (reuse, and rebuild when a cache file is damaged).
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

int main(void)
{
    test_build_error();
    test_disk_cache();
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
