/* util.c - errors, environment and string helpers used across the library. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void record(kiln_context *ctx, kiln_status status, const char *fmt,
                   va_list ap)
{
    if (!ctx || ctx->status != KILN_OK)
        return; /* the first error is the one worth reading */
    ctx->status = status;
    vsnprintf(ctx->message, sizeof ctx->message, fmt, ap);
}

kiln_status kiln__error(kiln_context *ctx, kiln_status status,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(ctx, status, fmt, ap);
    va_end(ap);
    return status;
}

void *kiln__error_null(kiln_context *ctx, kiln_status status,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(ctx, status, fmt, ap);
    va_end(ap);
    return NULL;
}

long kiln__env_long(const char *name, long fallback)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return fallback;
    char *end;
    long x = strtol(v, &end, 0);
    return *end ? fallback : x;
}

int kiln__contains_nocase(const char *haystack, const char *needle)
{
    size_t n = strlen(needle);
    if (n == 0)
        return 1;
    for (; *haystack; haystack++) {
        size_t i = 0;
        while (i < n && haystack[i] &&
               tolower((unsigned char)haystack[i]) ==
                   tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return 1;
    }
    return 0;
}

void kiln__copy_string(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

kiln_vendor kiln__vendor_from_id(uint32_t id)
{
    switch (id) {
    case 0x1002: case 0x1022: return KILN_VENDOR_AMD;
    case 0x8086: return KILN_VENDOR_INTEL;
    case 0x10de: return KILN_VENDOR_NVIDIA;
    }
    return KILN_VENDOR_OTHER;
}

kiln_vendor kiln__vendor_from_name(const char *name)
{
    if (kiln__contains_nocase(name, "nvidia"))
        return KILN_VENDOR_NVIDIA;
    if (kiln__contains_nocase(name, "advanced micro devices") ||
        kiln__contains_nocase(name, "amd"))
        return KILN_VENDOR_AMD;
    if (kiln__contains_nocase(name, "intel"))
        return KILN_VENDOR_INTEL;
    return KILN_VENDOR_OTHER;
}

const char *kiln_status_string(kiln_status s)
{
    switch (s) {
    case KILN_OK: return "success";
    case KILN_ERROR_INVALID_ARGUMENT: return "invalid argument";
    case KILN_ERROR_SHAPE: return "shape mismatch";
    case KILN_ERROR_DTYPE: return "unsupported dtype";
    case KILN_ERROR_UNSUPPORTED: return "unsupported on this device";
    case KILN_ERROR_OUT_OF_HOST_MEMORY: return "out of host memory";
    case KILN_ERROR_OUT_OF_DEVICE_MEMORY: return "out of device memory";
    case KILN_ERROR_KERNEL_BUILD: return "kernel build failed";
    case KILN_ERROR_DEVICE_LOST: return "device lost";
    case KILN_ERROR_NO_DEVICE: return "no such device";
    case KILN_ERROR_IO: return "input/output error";
    case KILN_ERROR_CORRUPT: return "corrupt data";
    case KILN_ERROR_BACKEND: return "backend error";
    }
    return "unknown status";
}

size_t kiln_dtype_size(kiln_dtype dtype)
{
    switch (dtype) {
    case KILN_F32: return 4;
    case KILN_I32: return 4;
    case KILN_F64: return 8;
    }
    return 0;
}

const char *kiln_dtype_name(kiln_dtype dtype)
{
    switch (dtype) {
    case KILN_F32: return "f32";
    case KILN_I32: return "i32";
    case KILN_F64: return "f64";
    }
    return "?";
}
