/*
 * test_vulkan_backend.c - what only the Vulkan backend does: run clean
 * under the validation layer, place barriers only where a kernel depends on
 * an earlier one, replay a recorded command buffer, and sub-allocate many
 * tensors from one device memory block.
 *
 * Exits 77 (skipped) when no usable Vulkan device can be opened.  Runs
 * with VK_LAYER_KHRONOS_validation when it is installed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln.h"

static int failures;
static int validation = 1;

static void check(int ok, const char *what, const char *detail)
{
    printf("%s: %s%s%s\n", ok ? "ok" : "FAIL", what, detail ? ": " : "",
           detail ? detail : "");
    if (!ok)
        failures++;
}

static kiln_context *open_vulkan(void)
{
    kiln_context_options o = {.device = "vulkan",
                              .vulkan_validation = validation};
    kiln_context *ctx = kiln_context_create(&o);
    if (!ctx) {
        printf("FAIL: kiln_context_create returned NULL\n");
        exit(1);
    }
    if (kiln_status_of(ctx) != KILN_OK && validation &&
        strstr(kiln_error_message(ctx), "VK_LAYER_KHRONOS_validation")) {
        printf("note: %s; running without validation\n",
               kiln_error_message(ctx));
        kiln_context_destroy(ctx);
        validation = 0;
        return open_vulkan();
    }
    if (kiln_status_of(ctx) == KILN_ERROR_NO_DEVICE ||
        kiln_status_of(ctx) == KILN_ERROR_UNSUPPORTED) {
        printf("SKIP: %s\n", kiln_error_message(ctx));
        kiln_context_destroy(ctx);
        exit(77);
    }
    if (kiln_status_of(ctx) != KILN_OK) {
        printf("FAIL: opening vulkan: %s\n", kiln_error_message(ctx));
        exit(1);
    }
    return ctx;
}

static uint64_t barriers(const kiln_context *ctx)
{
    kiln_context_stats s;
    kiln_context_get_stats(ctx, &s);
    return s.barriers;
}

static kiln_tensor *vector(kiln_context *ctx, int n, float base)
{
    float *v = malloc(n * sizeof *v);
    for (int i = 0; i < n; i++)
        v[i] = base + (float)i;
    int64_t shape[1] = {n};
    kiln_tensor *t = kiln_tensor_from_data(ctx, KILN_F32, 1, shape, v,
                                           n * sizeof *v);
    free(v);
    return t;
}

/* Reads @t (n floats) and compares with base + scale * i. */
static int matches(kiln_tensor *t, int n, float base, float scale)
{
    float *v = malloc(n * sizeof *v);
    int ok = v && kiln_tensor_read(t, v, n * sizeof *v) == KILN_OK;
    for (int i = 0; ok && i < n; i++)
        ok = v[i] == base + scale * (float)i;
    free(v);
    return ok;
}

/* (a) A run of ops draws no validation message. */
static void test_validation_clean(void)
{
    kiln_context *ctx = open_vulkan();
    kiln_tensor *x = vector(ctx, 64, 1.0f), *y = vector(ctx, 64, 2.0f);
    kiln_tensor *s = kiln_add(x, y);
    int64_t shape[2] = {8, 8};
    kiln_tensor *m = kiln_reshape(s, 2, shape);
    kiln_tensor *p = kiln_matmul(m, m);
    kiln_tensor *total = kiln_sum(p, 0, NULL, 0);
    float got = 0;
    kiln_status st = kiln_tensor_read(total, &got, sizeof got);
    check(st == KILN_OK && got > 0, "add, matmul, sum run",
          kiln_error_message(ctx));
    char detail[160];
    snprintf(detail, sizeof detail, "%llu messages%s",
             (unsigned long long)kiln_validation_message_count(ctx),
             validation ? "" : " (validation layer not installed)");
    check(kiln_validation_message_count(ctx) == 0 &&
              kiln_status_of(ctx) == KILN_OK,
          "no validation messages", detail);
    kiln_tensor_free(total);
    kiln_tensor_free(p);
    kiln_tensor_free(m);
    kiln_tensor_free(s);
    kiln_tensor_free(x);
    kiln_tensor_free(y);
    kiln_context_destroy(ctx);
}

/* (b) Independent kernels share no barrier; a dependent one gets one. */
static void test_barriers(void)
{
    kiln_context *ctx = open_vulkan();
    kiln_tensor *x1 = vector(ctx, 256, 0.0f), *y1 = vector(ctx, 256, 1.0f);
    kiln_tensor *x2 = vector(ctx, 256, 2.0f), *y2 = vector(ctx, 256, 3.0f);
    kiln_finish(ctx);
    uint64_t b0 = barriers(ctx);
    kiln_tensor *a = kiln_add(x1, y1); /* 1 + 2i */
    kiln_tensor *b = kiln_add(x2, y2); /* 5 + 2i */
    uint64_t b1 = barriers(ctx);
    kiln_tensor *c = kiln_add(a, x1); /* 1 + 3i, reads a */
    uint64_t b2 = barriers(ctx);
    char detail[96];
    snprintf(detail, sizeof detail, "%llu barriers",
             (unsigned long long)(b1 - b0));
    check(a && b && b1 == b0, "two independent adds: no barrier", detail);
    snprintf(detail, sizeof detail, "%llu barriers",
             (unsigned long long)(b2 - b1));
    check(c && b2 == b1 + 1, "dependent add: exactly one barrier", detail);
    check(matches(a, 256, 1, 2) && matches(b, 256, 5, 2) &&
              matches(c, 256, 1, 3),
          "results of the three adds", kiln_error_message(ctx));
    check(kiln_validation_message_count(ctx) == 0, "no validation messages",
          kiln_error_message(ctx));
    kiln_tensor_free(a);
    kiln_tensor_free(b);
    kiln_tensor_free(c);
    kiln_tensor_free(x1);
    kiln_tensor_free(y1);
    kiln_tensor_free(x2);
    kiln_tensor_free(y2);
    kiln_context_destroy(ctx);
}

/* (c) A recorded y = x + x replays on new contents of x. */
static void test_replay(void)
{
    kiln_context *ctx = open_vulkan();
    enum { N = 1000 };
    kiln_tensor *x = vector(ctx, N, 0.0f);
    kiln_status st = kiln_recording_begin(ctx);
    kiln_tensor *y = kiln_add(x, x);
    kiln_recording *rec = kiln_recording_end(ctx);
    check(st == KILN_OK && y && rec, "record y = x + x",
          kiln_error_message(ctx));
    float *v = malloc(N * sizeof *v);
    for (int round = 1; rec && round <= 3; round++) {
        for (int i = 0; i < N; i++)
            v[i] = (float)(round * 100 + i);
        kiln_status w = kiln_tensor_write(x, v, N * sizeof *v);
        kiln_status r = kiln_recording_replay(rec);
        char what[64];
        snprintf(what, sizeof what, "replay %d gives 2x", round);
        check(w == KILN_OK && r == KILN_OK &&
                  matches(y, N, 2.0f * round * 100, 2.0f),
              what, kiln_error_message(ctx));
    }
    free(v);
    check(kiln_validation_message_count(ctx) == 0, "no validation messages",
          kiln_error_message(ctx));
    kiln_recording_free(rec);
    kiln_tensor_free(y);
    kiln_tensor_free(x);
    kiln_context_destroy(ctx);
}

/* (d) 100 small tensors fit in one device block. */
static void test_blocks(void)
{
    kiln_context *ctx = open_vulkan();
    kiln_context_stats before, after;
    kiln_context_get_stats(ctx, &before);
    kiln_tensor *t[100];
    int64_t shape[1] = {16};
    for (int i = 0; i < 100; i++)
        t[i] = kiln_tensor_new(ctx, KILN_F32, 1, shape);
    kiln_context_get_stats(ctx, &after);
    uint64_t want = before.device_blocks ? before.device_blocks : 1;
    char detail[96];
    snprintf(detail, sizeof detail, "%llu blocks (%llu before)",
             (unsigned long long)after.device_blocks,
             (unsigned long long)before.device_blocks);
    check(t[99] && after.device_blocks == want,
          "100 small tensors use one block", detail);
    for (int i = 0; i < 100; i++)
        kiln_tensor_free(t[i]);
    kiln_context_destroy(ctx);
}

int main(void)
{
    test_validation_clean();
    test_barriers();
    test_replay();
    test_blocks();
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
