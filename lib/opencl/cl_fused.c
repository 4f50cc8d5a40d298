/*
 * cl_fused.c - OpenCL C source for a fused elementwise program
 * (KILN_K_FUSED and KILN_K_FUSED_REDUCE, queue/kernels_fused.h).
 *
 * The generated text follows kernels/fused.cl (or kernels/reduce.cl for a
 * reduction) and common.cl in one program: a function kiln_fused_eval
 * with one C expression per instruction, then the kernel.  kiln_fused
 * loads each input's element and stores the result, in two loops: a
 * one-dimensional layout (what most layouts coalesce to) indexes every
 * input as off + i * stride without a division, any other decomposes i
 * over the three dimensions.  kiln_fused_reduce is reduce.cl's kiln_reduce
 * with the program's value where that loads an element.
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

/* @item once per input k, every %d conversion in it receiving k (at most
 * eight), separated by @sep. */
static void put_each(text *t, int ninputs, const char *sep, const char *item)
{
    for (int k = 0; k < ninputs; k++) {
        put(t, "%s", k ? sep : "");
        put(t, item, k, k, k, k, k, k, k, k);
    }
}

/* The function kiln_fused_eval(r0, .., r(ninputs-1)): one expression per
 * instruction; 0 for a malformed program. */
static int put_eval(text *t, const uint32_t *program, int len, int ninputs)
{
    put(t, "\n/* generated (cl_fused.c): %d inputs, %d instructions */\n",
        ninputs, len);
    put(t, "T kiln_fused_eval(");
    for (int k = 0; k < ninputs; k++)
        put(t, "%sconst T r%d", k ? ", " : "", k);
    put(t, ")\n{\n");
    for (int j = 0; j < len; j++)
        if (!put_instr(t, program[j], ninputs + j))
            return 0;
    put(t, "    return r%d;\n}\n\n", ninputs + len - 1);
    return 1;
}

/* The kernel's parameter list: the inputs, the output, the block. */
static void put_signature(text *t, const char *name, int ninputs,
                          const char *params)
{
    put(t, "KILN_KERNEL void %s(", name);
    put_each(t, ninputs, "", "__global const T *in%d, ");
    put(t, "__global T *out, const %s P)\n{\n", params);
}

/* kiln_fused: one element per work-item (kernels/fused.cl). */
static void put_elementwise(text *t, int ninputs)
{
    put_signature(t, "kiln_fused", ninputs, "fused_params");
    put(t, "    const uint n = (uint)P.n;\n"
           "    if (P.shape[0] == 1 && P.shape[1] == 1) {\n");
    put_each(t, ninputs, "",
             "        __global const T *src%d = in%d + P.off_in[%d];\n"
             "        const int step%d = P.stride_in[%d][2];\n");
    put(t, "        __global T *dst = out + P.off_out;\n"
           "        for (uint i = kiln_global_index(); i < n;\n"
           "             i += kiln_global_count())\n"
           "            dst[i] = kiln_fused_eval(");
    put_each(t, ninputs, ", ", "src%d[(int)i * step%d]");
    put(t, ");\n"
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
    put_each(t, ninputs, ",",
             "\n            in%d[FUSED_AT(p, %d, i0, i1, i2)]");
    put(t, ");\n    }\n}\n");
}

/* kiln_fused_reduce: kernels/reduce.cl's kiln_reduce with the program's
 * value in place of the loaded element (the same fold and tree). */
static void put_reduction(text *t, int ninputs)
{
    put_signature(t, "kiln_fused_reduce", ninputs, "fused_reduce_params");
    put(t, "    __local T part[NTHREADS];\n"
           "    fused_reduce_params p = P;\n"
           "    const int op = p.mode & 15;\n"
           "    const uint split = (uint)max(p.mode >> 8, 1);\n"
           "    const uint lid = kiln_local_index();\n"
           "    const uint nout = (uint)fused_reduce_count(&p, 0);\n"
           "    const uint nred = (uint)fused_reduce_count(&p, 1);\n"
           "    /* One reduced dimension (most layouts): element r of an\n"
           "     * output is at its base + r * that dimension's stride. */\n"
           "    const int rd = fused_reduce_single_dim(&p);\n"
           "    for (uint v = kiln_group_index(); v < nout * split;\n"
           "         v += kiln_group_count()) {\n"
           "        uint r0, r1;\n"
           "        const uint o = reduce_slice(v, split, nred, &r0, &r1);\n"
           "        T acc = reduce_identity(op);\n"
           "        if (rd >= 0) {\n"
           "            int i[FUSED_DIMS];\n"
           "            fused_reduce_index(&p, o, 0, i);\n");
    put_each(t, ninputs, "",
             "            __global const T *src%d = in%d + p.off_in[%d] +\n"
             "                i[0] * p.stride_in[%d][0] + i[1] * "
             "p.stride_in[%d][1] +\n                i[2] * "
             "p.stride_in[%d][2];\n"
             "            const int step%d = p.stride_in[%d][rd];\n");
    put(t, "            for (uint r = r0 + lid; r < r1; r += NTHREADS)\n"
           "                acc = reduce_combine(op, acc, kiln_fused_eval(");
    put_each(t, ninputs, ", ", "src%d[(int)r * step%d]");
    put(t, "));\n"
           "        } else {\n"
           "            for (uint r = r0 + lid; r < r1; r += NTHREADS) {\n"
           "                int i[FUSED_DIMS];\n"
           "                fused_reduce_index(&p, o, r, i);\n"
           "                acc = reduce_combine(op, acc, kiln_fused_eval(");
    put_each(t, ninputs, ",",
             "\n                    in%d[p.off_in[%d] + i[0] * "
             "p.stride_in[%d][0] +\n                        i[1] * "
             "p.stride_in[%d][1] + i[2] * p.stride_in[%d][2]]");
    put(t, "));\n"
           "            }\n"
           "        }\n"
           "        T val = reduce_group(op, acc, part, lid);\n"
           "        if (lid == 0)\n"
           "            out[p.off_out + (int)v] =\n"
           "                reduce_finish(op, val, p.scale_lo, p.scale_hi);\n"
           "    }\n}\n");
}

char *kiln_cl_fused_source(int reduction, const uint32_t *program, int len,
                           int ninputs)
{
    text t = {0};
    if (len < 1 || len > KILN_FUSED_MAX_INSTRS || ninputs < 1 ||
        ninputs > KILN_FUSED_MAX_INPUTS)
        return NULL;
    if (!put_eval(&t, program, len, ninputs)) {
        free(t.s);
        return NULL;
    }
    if (reduction)
        put_reduction(&t, ninputs);
    else
        put_elementwise(&t, ninputs);
    if (t.failed) {
        free(t.s);
        return NULL;
    }
    return t.s;
}
