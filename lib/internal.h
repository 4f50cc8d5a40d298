/*
 * internal.h - what the library's own files share and users never see.
 */
#ifndef KILN_INTERNAL_H
#define KILN_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>

#include "kiln.h"
#include "queue/queue.h"
#include "queue/suballoc.h"

#if defined(__GNUC__)
#define KILN_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define KILN_PRINTF(f, a)
#endif

#define KILN_ERROR_MESSAGE_MAX 8192

struct kiln_context {
    kiln_device_info device;
    kiln_queue *queue;
    kiln_suballoc alloc;
    kiln_status status;
    char message[KILN_ERROR_MESSAGE_MAX];
    kiln_context_stats stats;
    uint64_t validation_messages;
    int recording;                  /* inside kiln_recording_begin/end     */
    uint64_t capture_serial;        /* which capture (storages born in it) */
    uint64_t stats_at_record;       /* dispatches when recording began     */
    /* Storages freed while recording: the capture still reads and writes
     * them, so they live until the recording is freed. */
    struct kiln_storage *kept;
    /* Live recordings: their device halves are freed before the device. */
    struct kiln_recording *recordings;
    int refs;                       /* 1 for the user + 1 per storage      */
    int destroyed;                  /* kiln_context_destroy was called     */
};

/**
 * Records an error on @ctx unless one is already stored (the first error
 * wins) and returns @status, so callers can `return kiln__error(...)`.
 * The message should start with the public call's name.
 */
kiln_status kiln__error(kiln_context *ctx, kiln_status status,
                        const char *fmt, ...) KILN_PRINTF(3, 4);

/** Like kiln__error, but always returns NULL, for constructors. */
void *kiln__error_null(kiln_context *ctx, kiln_status status,
                       const char *fmt, ...) KILN_PRINTF(3, 4);

/** Frees the device side of every live recording (context destroy). */
void kiln__recordings_release(kiln_context *ctx);

/** Is @dtype usable on this context's device (f64 needs fp64)? */
int kiln__dtype_supported(const kiln_context *ctx, kiln_dtype dtype);

/** Environment variable as an integer, @fallback when unset or malformed. */
long kiln__env_long(const char *name, long fallback);

/** Case-insensitive substring test. */
int kiln__contains_nocase(const char *haystack, const char *needle);

/** Bounded string copy that always terminates (@size > 0). */
void kiln__copy_string(char *dst, size_t size, const char *src);

/** Vendor from a PCI vendor id or a vendor string. */
kiln_vendor kiln__vendor_from_id(uint32_t pci_vendor_id);
kiln_vendor kiln__vendor_from_name(const char *name);

#endif /* KILN_INTERNAL_H */
