/*
 * cl_fused.c - OpenCL C source for a fused elementwise program
 * (KILN_K_FUSED, queue/kernels_fused.h).
 *
 * The generated text follows kernels/fused.cl (and common.cl) in one
 * program: a function kiln_fused_eval with one C expression per
 * instruction, then the kernel kiln_fused that loads each input's element
 * and stores the result.  Two loops: a one-dimensional layout (what most
 * layouts coalesce to) indexes every input as off + i * stride without a
 * division, any other decomposes i over the three dimensions.
 *
 * The text depends only on the program and the input count; the dtype and
 * the workgroup size come in as build options like every family's.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "opencl/cl_internal.h"
#include "queue/kernels.h"
#include "queue/kernels_fused.h"

/* A growing string; on allocation failure it stays failed and is freed. */
typedef struct text {
    char *s;
    size_t len, cap;
    int failed;
} text;

static void put(text *t, const char *fmt, ...) KILN_PRINTF(2, 3);

static void put(text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s ? t->s + t->len : NULL,
                          t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->s && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? 2 * t->cap : 4096;
        while (cap <= t->len + (size_t)n)
            cap *= 2;
        char *grown = realloc(t->s, cap);
        if (!grown) {
            t->failed = 1;
            return;
        }
        t->s = grown;
        t->cap = cap;
    }
}

/* "r5 = kiln_binary_op(0, r1, r3)" for word @w; 0 for a word the op
 * layer would have refused (unknown code, operand not yet written). */
static int put_instr(text *t, uint32_t w, int dst)
{
    unsigned code = w & 0xff, a = (w >> 8) & 0xff, b = (w >> 16) & 0xff,
             c = w >> 24;
    if ((int)a >= dst || (int)b >= dst || (int)c >= dst)
        return 0;
    if (code < KILN_FUSED_UNARY + KILN_UNARY_COUNT)
        put(t, "    const T r%d = kiln_unary_op(%u, r%u);\n", dst, code, a);
    else if (code >= KILN_FUSED_BINARY &&
             code < KILN_FUSED_BINARY + KILN_BINARY_COUNT)
        put(t, "    const T r%d = kiln_binary_op(%u, r%u, r%u);\n", dst,
            code - KILN_FUSED_BINARY, a, b);
    else if (code == KILN_FUSED_SELECT) /* != 0: NaN true, -0.0 false */
        put(t, "    const T r%d = r%u != (T)0 ? r%u : r%u;\n", dst, a, b, c);
    else
        return 0;
    return 1;
}

char *kiln_cl_fused_source(const uint32_t *program, int len, int ninputs)
{
    text t = {0};
    if (len < 1 || len > KILN_FUSED_MAX_INSTRS || ninputs < 1 ||
        ninputs > KILN_FUSED_MAX_INPUTS)
        return NULL;
    put(&t, "\n/* generated (cl_fused.c): %d inputs, %d instructions */\n",
        ninputs, len);
    put(&t, "T kiln_fused_eval(");
    for (int k = 0; k < ninputs; k++)
        put(&t, "%sconst T r%d", k ? ", " : "", k);
    put(&t, ")\n{\n");
    for (int j = 0; j < len; j++)
        if (!put_instr(&t, program[j], ninputs + j)) {
            free(t.s);
            return NULL;
        }
    put(&t, "    return r%d;\n}\n\n", ninputs + len - 1);

    put(&t, "KILN_KERNEL void kiln_fused(");
    for (int k = 0; k < ninputs; k++)
        put(&t, "__global const T *in%d, ", k);
    put(&t, "__global T *out, const fused_params P)\n{\n"
            "    const uint n = (uint)P.n;\n"
            "    if (P.shape[0] == 1 && P.shape[1] == 1) {\n");
    for (int k = 0; k < ninputs; k++)
        put(&t, "        __global const T *src%d = in%d + P.off_in[%d];\n"
                "        const int step%d = P.stride_in[%d][2];\n",
            k, k, k, k, k);
    put(&t, "        __global T *dst = out + P.off_out;\n"
            "        for (uint i = kiln_global_index(); i < n;\n"
            "             i += kiln_global_count())\n"
            "            dst[i] = kiln_fused_eval(");
    for (int k = 0; k < ninputs; k++)
        put(&t, "%ssrc%d[(int)i * step%d]", k ? ", " : "", k, k);
    put(&t, ");\n"
            "        return;\n"
            "    }\n"
            "    fused_params p = P;\n"
            "    const uint s1 = (uint)p.shape[1], s2 = (uint)p.shape[2];\n"
            "    for (uint i = kiln_global_index(); i < n;\n"
            "         i += kiln_global_count()) {\n"
            "        const uint rest = i / s2;\n"
            "        const int i2 = (int)(i %% s2), i1 = (int)(rest %% s1),\n"
            "                  i0 = (int)(rest / s1);\n"
            "        out[p.off_out + (int)i] = kiln_fused_eval(");
    for (int k = 0; k < ninputs; k++)
        put(&t, "%s\n            in%d[FUSED_AT(p, %d, i0, i1, i2)]",
            k ? "," : "", k, k);
    put(&t, ");\n    }\n}\n");
    if (t.failed) {
        free(t.s);
        return NULL;
    }
    return t.s;
}
