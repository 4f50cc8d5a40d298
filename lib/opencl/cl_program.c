/*
 * cl_program.c - building the kernels/<family>.cl families, with two caches.
 *
 * A program is one family's source (prefixed with common.cl) built with
 * options that fix the dtypes, the workgroup size and the tuning constants.
 * Which family holds a kernel, and its function name, come from the kernel
 * table (queue/kernel_table.h).  Programs and kernel objects are kept per
 * queue (in memory) and program binaries on disk, so a second process skips
 * the compiler.
 *
 * KILN_K_FUSED and KILN_K_FUSED_REDUCE (the table's has_program) are the
 * kernels whose source depends on the dispatch: their family
 * (kernels/fused.cl, kernels/reduce.cl) is followed by a kernel function
 * written from the dispatch's program (cl_fused.c).  Such a program is
 * built for one kernel, so
 * it is not kept in the program list: its kernel object owns it, and the
 * kernel is found in the kernel list by its key, which includes the
 * program.  The disk cache is keyed by the source like any other.
 *
 * Disk cache: one file per program in the cache directory (cache_file.h).
 * The file name is the 64-bit FNV-1a hash of the key (source, options,
 * device, driver and platform version); the file repeats the whole key and
 * a hash of the binary, so a collision, a truncated or a damaged file is
 * noticed and the program rebuilt.  Files are written atomically, so a
 * reader never sees half a file.  The cache is an optimisation only: any
 * failure in it falls back to building from source, silently.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_file.h"
#include "embedded.h"
#include "opencl/cl_internal.h"
#include "queue/kernel_table.h"
#include "queue/kernels_fused.h"

#define CACHE_MAGIC "KILNCLB1"
#define CACHE_HEADER 32 /* magic, key length, binary length, binary hash */
#define BUILD_LOG_MAX 6000

static uint64_t fnv1a(const void *data, size_t n, uint64_t h)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
#define FNV_SEED 0xcbf29ce484222325ull

/* ---- disk cache --------------------------------------------------------- */

void kiln_cl_cache_init(cl_queue *q)
{
    kiln__cache_dir(q->cache_dir, sizeof q->cache_dir);
}

static char *make_key(const cl_queue *q, const char *source,
                      const char *options)
{
    size_t n = strlen(source) + strlen(options) + strlen(q->device_name) +
               strlen(q->driver_version) + strlen(q->platform_version) + 64;
    char *key = malloc(n);
    if (key)
        snprintf(key, n, "kiln-opencl-v1\n%s\n%s\n%s\n%s\n%s", options,
                 q->device_name, q->driver_version, q->platform_version,
                 source);
    return key;
}

/* A cache file's path: the directory, "/", 16 hex digits, ".clbin". */
#define CACHE_PATH_MAX (sizeof ((cl_queue *)0)->cache_dir + 24)

static void cache_path(const cl_queue *q, const char *key,
                       char out[CACHE_PATH_MAX])
{
    unsigned long long h = fnv1a(key, strlen(key), FNV_SEED);
    snprintf(out, CACHE_PATH_MAX, "%s/%016llx.clbin", q->cache_dir, h);
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* A program from the cache file for @key, or NULL when there is none that
 * is whole, matches the key and loads. */
static cl_program cache_load(cl_queue *q, const char *key)
{
    char path[CACHE_PATH_MAX];
    size_t size = 0, klen = strlen(key);
    cache_path(q, key, path);
    unsigned char *data = kiln__read_file(path, &size);
    cl_program prog = NULL;
    if (!data)
        return NULL;
    if (size < CACHE_HEADER || memcmp(data, CACHE_MAGIC, 8) != 0 ||
        get_u64(data + 8) != klen)
        goto out;
    uint64_t blen = get_u64(data + 16);
    if (blen == 0 || size != CACHE_HEADER + klen + blen ||
        memcmp(data + CACHE_HEADER, key, klen) != 0)
        goto out;
    const unsigned char *bin = data + CACHE_HEADER + klen;
    if (fnv1a(bin, blen, FNV_SEED) != get_u64(data + 24))
        goto out;
    size_t len = blen;
    cl_int err, binerr;
    prog = clCreateProgramWithBinary(q->context, 1, &q->device, &len, &bin,
                                     &binerr, &err);
    if (err != CL_SUCCESS || binerr != CL_SUCCESS) {
        if (prog)
            clReleaseProgram(prog);
        prog = NULL;
        goto out;
    }
    if (clBuildProgram(prog, 1, &q->device, NULL, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(prog);
        prog = NULL;
    }
out:
    free(data);
    return prog;
}

/* Writes @prog's binary for @key (header, key, binary in one buffer, the
 * binary fetched straight into place); any failure just leaves no file. */
static void cache_store(cl_queue *q, const char *key, cl_program prog)
{
    size_t blen = 0, klen = strlen(key);
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof blen, &blen,
                         NULL) != CL_SUCCESS || blen == 0)
        return;
    unsigned char *file = malloc(CACHE_HEADER + klen + blen);
    if (!file)
        return;
    unsigned char *bin = file + CACHE_HEADER + klen;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin,
                         NULL) == CL_SUCCESS) {
        char path[CACHE_PATH_MAX];
        memcpy(file, CACHE_MAGIC, 8);
        put_u64(file + 8, klen);
        put_u64(file + 16, blen);
        put_u64(file + 24, fnv1a(bin, blen, FNV_SEED));
        memcpy(file + CACHE_HEADER, key, klen);
        cache_path(q, key, path);
        kiln__write_file_atomic(path, file, CACHE_HEADER + klen + blen);
    }
    free(file);
}

/* ---- building ----------------------------------------------------------- */

static kiln_status build_failed(cl_queue *q, const char *family,
                                const char *options, cl_int err,
                                cl_program prog)
{
    size_t n = 0;
    char *log = NULL;
    if (prog && clGetProgramBuildInfo(prog, q->device, CL_PROGRAM_BUILD_LOG,
                                      0, NULL, &n) == CL_SUCCESS && n > 0 &&
        (log = calloc(1, n + 1)) != NULL &&
        clGetProgramBuildInfo(prog, q->device, CL_PROGRAM_BUILD_LOG, n, log,
                              NULL) != CL_SUCCESS)
        log[0] = '\0';
    kiln__error(q->base.ctx, KILN_ERROR_KERNEL_BUILD,
                "opencl: building %s (%s) failed:\n%.*s%s%s", family,
                options, BUILD_LOG_MAX, log && log[0] ? log : "",
                log && log[0] ? "\n" : "", kiln_cl_error_string(err));
    free(log);
    return KILN_ERROR_KERNEL_BUILD;
}

/* Builds @source with @options, through the disk cache. */
static kiln_status build_source(cl_queue *q, const char *family,
                                const char *source, const char *options,
                                cl_program *out)
{
    char *key = q->cache_dir[0] ? make_key(q, source, options) : NULL;
    cl_program prog = key ? cache_load(q, key) : NULL;
    cl_int err;
    if (prog) {
        q->base.ctx->stats.programs_cached++;
        goto done;
    }
    prog = clCreateProgramWithSource(q->context, 1, &source, NULL, &err);
    if (err != CL_SUCCESS) {
        free(key);
        return kiln__error(q->base.ctx, kiln_cl_status(err),
                           "opencl: clCreateProgramWithSource (%s) failed: "
                           "%s", family, kiln_cl_error_string(err));
    }
    err = clBuildProgram(prog, 1, &q->device, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        build_failed(q, family, options, err, prog);
        clReleaseProgram(prog);
        free(key);
        return KILN_ERROR_KERNEL_BUILD;
    }
    q->base.ctx->stats.programs_built++;
    if (key)
        cache_store(q, key, prog);
done:
    free(key);
    *out = prog;
    return KILN_OK;
}

kiln_status kiln_cl_build_program_for_test(kiln_queue *base,
                                           const char *source,
                                           const char *options)
{
    cl_queue *q = (cl_queue *)base;
    cl_program prog = NULL;
    kiln_status s = build_source(q, "test", source, options, &prog);
    if (prog)
        clReleaseProgram(prog);
    return s;
}

/* ---- in-memory caches --------------------------------------------------- */

static const char *cl_type(kiln_dtype t)
{
    return t == KILN_F32 ? "float" : t == KILN_I32 ? "int" : "double";
}

static const char *type_macro(kiln_dtype t)
{
    return t == KILN_F32 ? "F32" : t == KILN_I32 ? "I32" : "F64";
}

static void make_options(const cl_kernel_key *k, const kiln_kernel_desc *desc,
                         char *buf, size_t size)
{
    int n = snprintf(buf, size, "-cl-std=CL1.2 -DT=%s -DT_%s=1",
                     cl_type(k->dtype), type_macro(k->dtype));
    if (desc->uses_dtype2)
        n += snprintf(buf + n, size - (size_t)n, " -DU=%s -DU_%s=1",
                      cl_type(k->dtype2), type_macro(k->dtype2));
    snprintf(buf + n, size - (size_t)n,
             " -DLOCAL_X=%u -DLOCAL_Y=%u -DLOCAL_Z=%u -DC0=%d -DC1=%d "
             "-DC2=%d -DC3=%d",
             k->local[0], k->local[1], k->local[2], k->consts[0],
             k->consts[1], k->consts[2], k->consts[3]);
}

static int grow(void **items, size_t *cap, size_t count, size_t elem)
{
    if (count < *cap)
        return 1;
    size_t n = *cap ? 2 * *cap : 16;
    void *p = realloc(*items, n * elem);
    if (!p)
        return 0;
    *items = p;
    *cap = n;
    return 1;
}

/* Refuses what the kernel table says cannot run here: bad tuning constants,
 * i32 where the kernel has no integer variant, more __local memory than
 * CL_DEVICE_LOCAL_MEM_SIZE (a build or launch failure, later, otherwise). */
static kiln_status check_variant(cl_queue *q, const kiln_kernel_desc *desc,
                                 const kiln_dispatch *d)
{
    const char *bad = kiln_kernel_invalid(desc, d);
    if (bad)
        return kiln__error(q->base.ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "opencl dispatch: %s", bad);
    if (!kiln_kernel_has_variant(d->kernel, d->dtype))
        return kiln__error(q->base.ctx, KILN_ERROR_DTYPE,
                           "opencl dispatch: %s has no i32 variant",
                           desc->name);
    uint64_t need = kiln_kernel_shared_bytes(desc, d);
    cl_ulong have = 0;
    if (!need)
        return KILN_OK;
    cl_int err = clGetDeviceInfo(q->device, CL_DEVICE_LOCAL_MEM_SIZE,
                                 sizeof have, &have, NULL);
    if (err != CL_SUCCESS)
        return kiln__error(q->base.ctx, kiln_cl_status(err),
                           "opencl dispatch: clGetDeviceInfo("
                           "CL_DEVICE_LOCAL_MEM_SIZE) failed: %s",
                           kiln_cl_error_string(err));
    if (need > have)
        return kiln__error(q->base.ctx, KILN_ERROR_UNSUPPORTED,
                           "opencl dispatch: %s needs %llu bytes of local "
                           "memory, the device has %llu", desc->name,
                           (unsigned long long)need, (unsigned long long)have);
    return KILN_OK;
}

/* @head (if any), common.cl, kernels/@family.cl and @tail (if any) as one
 * malloc'd string; NULL after an error. */
static char *family_source(cl_queue *q, const char *family, const char *head,
                           const char *tail)
{
    const kiln_embedded_file *common =
        kiln_embedded_find(kiln_cl_sources, "common");
    const kiln_embedded_file *fam =
        kiln_embedded_find(kiln_cl_sources, family);
    if (!common || !fam) {
        kiln__error(q->base.ctx, KILN_ERROR_BACKEND,
                    "opencl: kernel source %s.cl is not embedded", family);
        return NULL;
    }
    size_t hlen = head ? strlen(head) : 0, tlen = tail ? strlen(tail) : 0;
    char *source = malloc(hlen + common->size + fam->size + tlen + 2);
    if (!source) {
        kiln__error(q->base.ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                    "opencl: out of host memory building %s", family);
        return NULL;
    }
    char *at = source;
    memcpy(at, head ? head : "", hlen);
    at += hlen;
    memcpy(at, common->data, common->size);
    at += common->size;
    *at++ = '\n';
    memcpy(at, fam->data, fam->size);
    at += fam->size;
    memcpy(at, tail ? tail : "", tlen + 1);
    return source;
}

/* The program for (@family, @options), built on first use. */
static kiln_status get_program(cl_queue *q, const char *family,
                               const char *options,
                               cl_program *out)
{
    for (size_t i = 0; i < q->nprograms; i++) {
        cl_program_entry *e = &q->programs[i];
        if (strcmp(e->family, family) == 0 &&
            strcmp(e->options, options) == 0) {
            *out = e->program;
            return KILN_OK;
        }
    }
    char *source = family_source(q, family, NULL, NULL);
    if (!source)
        return q->base.ctx->status;
    char *opts = strdup(options);
    if (!opts ||
        !grow((void **)&q->programs, &q->capprograms, q->nprograms,
              sizeof *q->programs)) {
        free(source);
        free(opts);
        return kiln__error(q->base.ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                           "opencl: out of host memory building %s",
                           family);
    }
    kiln_status s = build_source(q, family, source, options, out);
    free(source);
    if (s != KILN_OK) {
        free(opts);
        return s;
    }
    q->programs[q->nprograms++] = (cl_program_entry){family, opts, *out};
    return KILN_OK;
}

/* The program of a kernel with a program: its family and the kernel
 * function for @key's program, built with FP_CONTRACT OFF from the first
 * line (common.cl's op bodies included), so no multiply and add of two
 * instructions become one fma.  Not cached in memory: the caller's kernel
 * object owns it. */
static kiln_status fused_program(cl_queue *q, const kiln_kernel_desc *desc,
                                 const cl_kernel_key *key,
                                 const char *options, cl_program *out)
{
    char *kernel = kiln_cl_fused_source(key->kernel == KILN_K_FUSED_REDUCE,
                                        key->program, key->program_len,
                                        key->ninputs);
    if (!kernel)
        return kiln__error(q->base.ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "opencl: malformed fused program (%d "
                           "instructions, %d inputs) or out of host memory",
                           key->program_len, key->ninputs);
    char *source = family_source(q, desc->cl_family,
                                 "#pragma OPENCL FP_CONTRACT OFF\n", kernel);
    free(kernel);
    if (!source)
        return q->base.ctx->status;
    kiln_status s = build_source(q, desc->cl_family, source, options, out);
    free(source);
    return s;
}

/* Builds (or finds the program of) the kernel object for @key and caches
 * it. */
static cl_kernel kernel_create(cl_queue *q, const kiln_kernel_desc *desc,
                               const cl_kernel_key *key, kiln_status *status)
{
    char options[512], fn[64];
    cl_program prog = NULL;
    const int fused = desc->has_program;
    make_options(key, desc, options, sizeof options);
    *status = fused ? fused_program(q, desc, key, options, &prog)
                    : get_program(q, desc->cl_family, options, &prog);
    if (*status != KILN_OK)
        return NULL;
    cl_int err = CL_SUCCESS;
    cl_kernel k = NULL;
    if (grow((void **)&q->kernels, &q->capkernels, q->nkernels,
             sizeof *q->kernels)) {
        snprintf(fn, sizeof fn, "kiln_%s", desc->name);
        k = clCreateKernel(prog, fn, &err);
    }
    if (fused) /* the kernel object keeps its program alive */
        clReleaseProgram(prog);
    if (!k && err == CL_SUCCESS) {
        *status = kiln__error(q->base.ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                              "opencl: out of host memory");
        return NULL;
    }
    if (err != CL_SUCCESS) {
        *status = kiln__error(q->base.ctx, kiln_cl_status(err),
                              "opencl: clCreateKernel(%s) (%s) failed: %s",
                              fn, options, kiln_cl_error_string(err));
        return NULL;
    }
    q->kernels[q->nkernels++] = (cl_kernel_entry){*key, k};
    return k;
}

cl_kernel kiln_cl_get_kernel(cl_queue *q, const kiln_dispatch *d,
                             kiln_status *status)
{
    const kiln_kernel_desc *desc = kiln_kernel_describe(d->kernel);
    if (!desc) {
        *status = kiln__error(q->base.ctx, KILN_ERROR_UNSUPPORTED,
                              "opencl: no kernel with id %d in this build",
                              (int)d->kernel);
        return NULL;
    }
    cl_kernel_key key;
    memset(&key, 0, sizeof key); /* padding too: compared with memcmp */
    key.kernel = d->kernel;
    key.dtype = d->dtype;
    key.dtype2 = desc->uses_dtype2 ? d->dtype2 : KILN_F32;
    memcpy(key.local, d->local, sizeof key.local);
    memcpy(key.consts, d->consts, sizeof key.consts);
    if (desc->has_program) {
        key.ninputs = kiln_kernel_program_inputs(d);
        key.program_len = d->program_len;
        if (d->program_len >= 1 && d->program_len <= KILN_FUSED_MAX_INSTRS)
            memcpy(key.program, d->program,
                   sizeof(uint32_t) * (size_t)d->program_len);
    }
    for (size_t i = 0; i < q->nkernels; i++)
        if (memcmp(&q->kernels[i].key, &key, sizeof key) == 0)
            return q->kernels[i].kernel;
    /* Checked once per variant: what it checks depends on the key only. */
    *status = check_variant(q, desc, d);
    if (*status != KILN_OK)
        return NULL;
    return kernel_create(q, desc, &key, status);
}

void kiln_cl_release_programs(cl_queue *q)
{
    for (size_t i = 0; i < q->nkernels; i++)
        clReleaseKernel(q->kernels[i].kernel);
    for (size_t i = 0; i < q->nprograms; i++) {
        clReleaseProgram(q->programs[i].program);
        free(q->programs[i].options);
    }
    free(q->kernels);
    free(q->programs);
    q->kernels = NULL;
    q->programs = NULL;
    q->nkernels = q->capkernels = q->nprograms = q->capprograms = 0;
}
