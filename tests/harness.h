/*
 * harness.h - the small test harness every Kiln test uses.
 *
 * Tests print one line per check and keep going; main() returns
 * harness_exit(): 0 if all passed, 1 otherwise, 77 (meson's "skipped") when
 * harness_skip() was called.  Device selection: "--device SPEC" or the
 * KILN_TEST_DEVICE environment variable.
 */
#ifndef KILN_TEST_HARNESS_H
#define KILN_TEST_HARNESS_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln.h"

static int harness_failures, harness_checks;

static inline void harness_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    harness_failures++;
}

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        harness_checks++;                                                    \
        if (!(cond)) {                                                       \
            printf("%s:%d: ", __FILE__, __LINE__);                           \
            harness_fail(__VA_ARGS__);                                       \
        }                                                                    \
    } while (0)

static inline int harness_exit(void)
{
    printf("%d checks, %d failed\n", harness_checks, harness_failures);
    return harness_failures ? 1 : 0;
}

/* The device spec from argv or the environment; "reference" by default. */
static inline const char *harness_device(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--device") == 0)
            return argv[i + 1];
    const char *env = getenv("KILN_TEST_DEVICE");
    return env && *env ? env : "reference";
}

/* Opens @spec with guards (and validation on Vulkan); exits 77 when the
 * backend is not available on this machine. */
static inline kiln_context *harness_open(const char *spec, uint32_t guard)
{
    kiln_context_options o = {.device = spec, .guard_bytes = guard,
                              .vulkan_validation = 1};
    kiln_context *ctx = kiln_context_create(&o);
    if (!ctx) {
        printf("FAIL: kiln_context_create(%s) returned NULL\n", spec);
        exit(1);
    }
    if (kiln_status_of(ctx) == KILN_ERROR_NO_DEVICE) {
        printf("SKIP: %s\n", kiln_error_message(ctx));
        kiln_context_destroy(ctx);
        exit(77);
    }
    if (kiln_status_of(ctx) != KILN_OK) {
        printf("FAIL: opening %s: %s\n", spec, kiln_error_message(ctx));
        exit(1);
    }
    const kiln_device_info *d = kiln_context_device(ctx);
    printf("device: %s [%s, %s]\n", d->name, kiln_backend_name(d->backend),
           kiln_device_type_name(d->type));
    return ctx;
}

/* The end of a test on @ctx: guard bytes intact, no validation messages,
 * no device allocation left; destroys @ctx and returns harness_exit(). */
static inline int harness_close(kiln_context *ctx)
{
    CHECK(kiln_check_guards(ctx) == KILN_OK, "guard bytes intact: %s",
          kiln_error_message(ctx));
    CHECK(kiln_validation_message_count(ctx) == 0, "no validation messages");
    kiln_context_stats cs;
    kiln_context_get_stats(ctx, &cs);
    CHECK(cs.live_allocations == 0, "nothing leaks: %llu live allocations",
          (unsigned long long)cs.live_allocations);
    kiln_context_destroy(ctx);
    return harness_exit();
}

/* Deterministic random numbers (splitmix64), the same on every machine. */
typedef struct { uint64_t s; } harness_rng;

static inline uint64_t harness_next(harness_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline double harness_uniform(harness_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * ((double)(harness_next(r) >> 11) * 0x1.0p-53);
}

static inline int harness_int(harness_rng *r, int lo, int hi)
{
    return lo + (int)(harness_next(r) % (uint64_t)(hi - lo + 1));
}

/* Takes "--seed N" from the command line into @r (its default stays
 * otherwise) and prints the seed, so a failing run can be repeated. */
static inline void harness_seed(int argc, char **argv, harness_rng *r)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--seed") == 0)
            r->s = strtoull(argv[i + 1], NULL, 0);
    printf("seed %llu\n", (unsigned long long)r->s);
}

#endif
