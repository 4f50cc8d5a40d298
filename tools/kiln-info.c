/*
 * kiln-info - lists every device Kiln can see, what it offers, and which one
 * Kiln picks by default ("auto") and for the KILN_DEVICE variable.
 *
 * usage: kiln-info [--json] [--help]
 *
 * Uses the public API only (kiln.h).  The JSON form is written by hand so the
 * tool needs nothing beyond the library.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kiln-info [--json] [--help]\n"
            "\n"
            "Lists the devices Kiln can run on (OpenCL, Vulkan and the C\n"
            "reference) and the one it selects: \"auto\", and KILN_DEVICE when\n"
            "that is set.\n"
            "\n"
            "  --json   machine-readable output\n"
            "  --help   this text\n"
            "\n"
            "Environment: KILN_DEVICE, KILN_DISABLE_OPENCL=1, KILN_DISABLE_VULKAN=1.\n");
}

/* "15.5 GiB", "512 MiB", "64 KiB" - or "unknown" for 0. */
static const char *format_bytes(uint64_t bytes, char *buf, size_t size)
{
    const double kib = 1024.0, mib = kib * 1024.0, gib = mib * 1024.0;

    if (bytes == 0)
        snprintf(buf, size, "unknown");
    else if ((double)bytes >= gib)
        snprintf(buf, size, "%.1f GiB", (double)bytes / gib);
    else if ((double)bytes >= mib)
        snprintf(buf, size, "%.0f MiB", (double)bytes / mib);
    else if ((double)bytes >= kib)
        snprintf(buf, size, "%.0f KiB", (double)bytes / kib);
    else
        snprintf(buf, size, "%" PRIu64 " B", bytes);
    return buf;
}

static const char *format_subgroups(const kiln_device_info *d, char *buf,
                                    size_t size)
{
    if (d->subgroup_min == 0 && d->subgroup_max == 0)
        snprintf(buf, size, "n/a");
    else if (d->subgroup_min == d->subgroup_max || d->subgroup_min == 0)
        snprintf(buf, size, "%" PRIu32, d->subgroup_max);
    else
        snprintf(buf, size, "%" PRIu32 "-%" PRIu32, d->subgroup_min,
                 d->subgroup_max);
    return buf;
}

static const char *yes_no(int v)
{
    return v ? "yes" : "no";
}

static void print_device(int i, const kiln_device_info *d)
{
    char mem[32], alloc[32], local[32], sg[32];

    printf("[%d] %s:%d  %s\n", i, kiln_backend_name(d->backend), d->index,
           d->name);
    printf("    vendor          %s\n", kiln_vendor_name(d->vendor));
    printf("    type            %s\n", kiln_device_type_name(d->type));
    printf("    platform        %s\n", d->platform[0] ? d->platform : "-");
    printf("    driver version  %s\n",
           d->driver_version[0] ? d->driver_version : "-");
    printf("    API version     %s\n", d->api_version[0] ? d->api_version : "-");
    printf("    memory          %s\n",
           format_bytes(d->global_memory, mem, sizeof mem));
    printf("    max allocation  %s\n",
           format_bytes(d->max_allocation, alloc, sizeof alloc));
    if (d->compute_units)
        printf("    compute units   %" PRIu32 "\n", d->compute_units);
    else
        printf("    compute units   unknown\n");
    printf("    subgroup sizes  %s\n", format_subgroups(d, sg, sizeof sg));
    printf("    local memory    %s\n",
           format_bytes(d->local_memory, local, sizeof local));
    printf("    max workgroup   %" PRIu32 "\n", d->max_workgroup_size);
    printf("    fp16            %s\n", yes_no(d->fp16));
    printf("    fp64            %s\n", yes_no(d->fp64));
    if (d->usable)
        printf("    usable          yes\n");
    else
        printf("    usable          no (%s)\n",
               d->unusable_reason[0] ? d->unusable_reason : "no reason given");
}

/* One line saying what @spec selects, e.g. for "auto" and KILN_DEVICE. */
static void print_selection(const char *label, const kiln_device_info *devs,
                            int n, const char *spec)
{
    char why[256] = "";
    int i = kiln_device_select(devs, n, spec, why, sizeof why);

    if (i >= 0 && i < n)
        printf("%s selects [%d] %s:%d  %s\n", label, i,
               kiln_backend_name(devs[i].backend), devs[i].index,
               devs[i].name);
    else
        printf("%s selects nothing: %s\n", label,
               why[0] ? why : "no matching device");
}

/* Writes @s as a JSON string literal (UTF-8 bytes pass through). */
static void json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                printf("\\u%04x", *p);
            else
                putchar(*p);
        }
    }
    putchar('"');
}

static void json_field_string(const char *key, const char *value, int last)
{
    printf("      ");
    json_string(key);
    printf(": ");
    json_string(value);
    puts(last ? "" : ",");
}

static void json_field_u64(const char *key, uint64_t value)
{
    printf("      ");
    json_string(key);
    printf(": %" PRIu64 ",\n", value);
}

static void json_field_bool(const char *key, int value)
{
    printf("      ");
    json_string(key);
    printf(": %s,\n", value ? "true" : "false");
}

static void json_device(int i, const kiln_device_info *d, int last)
{
    printf("    {\n");
    json_field_u64("index", (uint64_t)i);
    json_field_string("backend", kiln_backend_name(d->backend), 0);
    json_field_u64("backend_index", (uint64_t)d->index);
    json_field_string("name", d->name, 0);
    json_field_string("vendor", kiln_vendor_name(d->vendor), 0);
    json_field_string("type", kiln_device_type_name(d->type), 0);
    json_field_string("platform", d->platform, 0);
    json_field_string("driver_version", d->driver_version, 0);
    json_field_string("api_version", d->api_version, 0);
    json_field_u64("global_memory", d->global_memory);
    json_field_u64("max_allocation", d->max_allocation);
    json_field_u64("compute_units", d->compute_units);
    json_field_u64("subgroup_min", d->subgroup_min);
    json_field_u64("subgroup_max", d->subgroup_max);
    json_field_u64("local_memory", d->local_memory);
    json_field_u64("max_workgroup_size", d->max_workgroup_size);
    json_field_bool("fp16", d->fp16);
    json_field_bool("fp64", d->fp64);
    json_field_bool("usable", d->usable);
    json_field_string("unusable_reason", d->usable ? "" : d->unusable_reason,
                      1);
    printf("    }%s\n", last ? "" : ",");
}

/* "key": {"spec": ..., "index": N or null, "why": ...} */
static void json_selection(const char *key, const kiln_device_info *devs,
                           int n, const char *spec, int last)
{
    char why[256] = "";
    int i = kiln_device_select(devs, n, spec, why, sizeof why);

    printf("  ");
    json_string(key);
    printf(": {\"spec\": ");
    json_string(spec);
    if (i >= 0 && i < n)
        printf(", \"index\": %d, \"why\": \"\"}", i);
    else {
        printf(", \"index\": null, \"why\": ");
        json_string(why);
        putchar('}');
    }
    puts(last ? "" : ",");
}

static void print_json(const kiln_device_info *devs, int n, const char *env)
{
    printf("{\n  \"version\": \"%d.%d.%d\",\n", KILN_VERSION_MAJOR,
           KILN_VERSION_MINOR, KILN_VERSION_PATCH);
    printf("  \"devices\": [\n");
    for (int i = 0; i < n; i++)
        json_device(i, &devs[i], i == n - 1);
    printf("  ],\n");
    json_selection("auto", devs, n, "auto", env == NULL);
    if (env)
        json_selection("KILN_DEVICE", devs, n, env, 1);
    printf("}\n");
}

static void print_text(const kiln_device_info *devs, int n, const char *env)
{
    printf("Kiln %d.%d.%d: %d device%s\n\n", KILN_VERSION_MAJOR,
           KILN_VERSION_MINOR, KILN_VERSION_PATCH, n, n == 1 ? "" : "s");
    for (int i = 0; i < n; i++) {
        print_device(i, &devs[i]);
        putchar('\n');
    }
    print_selection("auto", devs, n, "auto");
    if (env) {
        char label[160];
        snprintf(label, sizeof label, "KILN_DEVICE=%s", env);
        print_selection(label, devs, n, env);
    }
}

int main(int argc, char **argv)
{
    int json = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--help") == 0 ||
                   strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "kiln-info: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    /* First call sizes the list; the reference device is always there. */
    int total = kiln_device_list(NULL, 0);
    if (total < 1)
        total = 1;
    kiln_device_info *devs = calloc((size_t)total, sizeof *devs);
    if (!devs) {
        fprintf(stderr, "kiln-info: out of memory\n");
        return 1;
    }
    int n = kiln_device_list(devs, total);
    if (n > total)
        n = total;

    const char *env = getenv("KILN_DEVICE");
    if (env && !env[0])
        env = NULL;
    if (json)
        print_json(devs, n, env);
    else
        print_text(devs, n, env);
    free(devs);
    return 0;
}
