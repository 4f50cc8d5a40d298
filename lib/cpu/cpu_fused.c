/*
 * cpu_fused.c - reference semantics of the fused elementwise kernel
 * (KILN_K_FUSED, queue/kernels_fused.h): interprets the program for each
 * output element.
 *
 * Every register holds a value of T, and each instruction goes through the
 * same scalar functions as KILN_K_UNARY / KILN_K_BINARY (an f32 result is
 * computed in double and rounded once, then stored as float), so a fused
 * chain is bit for bit the chain of separate kernels on this backend.
 * SELECT moves values without arithmetic, as KILN_K_SELECT moves bits.
 */
#include <string.h>

#include "cpu/cpu_kernels_internal.h"
#include "queue/kernels.h"
#include "queue/kernels_fused.h"

#define NREGS (KILN_FUSED_MAX_INPUTS + KILN_FUSED_MAX_INSTRS)

/* One register of T. */
typedef union fused_reg {
    float f;
    double d;
    int32_t i;
} fused_reg;

static int is_true(kiln_dtype t, fused_reg r)
{
    /* != 0 as C compares: NaN is true, -0.0 false. */
    switch (t) {
    case KILN_F32: return r.f != 0;
    case KILN_I32: return r.i != 0;
    case KILN_F64: return r.d != 0;
    }
    return 0;
}

static fused_reg run_instr(kiln_dtype t, uint32_t w, const fused_reg *r)
{
    int code = (int)(w & 0xff);
    fused_reg a = r[(w >> 8) & 0xff], b = r[(w >> 16) & 0xff];
    fused_reg out = {0};
    if (code >= KILN_FUSED_SELECT)
        return is_true(t, a) ? b : r[w >> 24];
    if (code >= KILN_FUSED_BINARY) {
        int op = code - KILN_FUSED_BINARY;
        switch (t) {
        case KILN_F32: out.f = (float)kiln_cpu_binary_float(op, a.f, b.f); break;
        case KILN_I32: out.i = kiln_cpu_binary_int(op, a.i, b.i); break;
        case KILN_F64: out.d = kiln_cpu_binary_float(op, a.d, b.d); break;
        }
        return out;
    }
    switch (t) {
    case KILN_F32: out.f = (float)kiln_cpu_unary_float(code, a.f); break;
    case KILN_I32: out.i = kiln_cpu_unary_int(code, a.i); break;
    case KILN_F64: out.d = kiln_cpu_unary_float(code, a.d); break;
    }
    return out;
}

/* The op layer checks programs in full (lib/ops/fused.c); this only keeps
 * a malformed dispatch from indexing outside the registers. */
static int program_ok(const kiln_dispatch *d, int ninputs)
{
    if (ninputs < 1 || ninputs > KILN_FUSED_MAX_INPUTS ||
        d->program_len < 1 || d->program_len > KILN_FUSED_MAX_INSTRS ||
        d->nbindings != ninputs + 1)
        return 0;
    for (int j = 0; j < d->program_len; j++) {
        uint32_t w = d->program[j];
        uint32_t code = w & 0xff, readable = (uint32_t)(ninputs + j);
        if (code > KILN_FUSED_SELECT ||
            (code >= KILN_FUSED_BINARY + KILN_BINARY_COUNT &&
             code != KILN_FUSED_SELECT) ||
            (code < KILN_FUSED_BINARY && code >= KILN_UNARY_COUNT) ||
            ((w >> 8) & 0xff) >= readable || ((w >> 16) & 0xff) >= readable ||
            (w >> 24) >= readable)
            return 0;
    }
    return 1;
}

/* The program's value at index @idx of the 3-D layout; inputs at
 * @off_in[k] + sum idx[d] * @stride_in[k][d] of binding k. */
static fused_reg eval_at(const kiln_dispatch *d, void *const *base, int nin,
                         const int32_t *off_in,
                         const int32_t (*stride_in)[KILN_FUSED_DIMS],
                         const int64_t *idx)
{
    const size_t es = kiln_dtype_size(d->dtype);
    fused_reg r[NREGS];
    memset(r, 0, sizeof r);
    for (int k = 0; k < nin; k++) {
        int64_t at = off_in[k];
        for (int dim = 0; dim < KILN_FUSED_DIMS; dim++)
            at += idx[dim] * stride_in[k][dim];
        memcpy(&r[k], (const char *)base[k] + at * (int64_t)es, es);
    }
    for (int j = 0; j < d->program_len; j++)
        r[nin + j] = run_instr(d->dtype, d->program[j], r);
    return r[nin + d->program_len - 1];
}

kiln_status kiln_cpu_fused(const kiln_dispatch *d, void *const *base)
{
    const kiln_fused_params *p = (const void *)d->params;
    const int nin = p->ninputs;
    if (!program_ok(d, nin))
        return KILN_ERROR_INVALID_ARGUMENT;
    const size_t es = kiln_dtype_size(d->dtype);
    for (int64_t i = 0; i < p->n; i++) {
        /* Decompose i over the shape, innermost dimension last. */
        int64_t idx[KILN_FUSED_DIMS], rest = i;
        for (int dim = KILN_FUSED_DIMS - 1; dim >= 0; dim--) {
            idx[dim] = rest % p->shape[dim];
            rest /= p->shape[dim];
        }
        fused_reg v = eval_at(d, base, nin, p->off_in, p->stride_in, idx);
        memcpy((char *)base[nin] + (p->off_out + i) * (int64_t)es, &v, es);
    }
    return KILN_OK;
}

static double reg_value(kiln_dtype t, fused_reg r)
{
    return t == KILN_F32 ? (double)r.f : t == KILN_I32 ? (double)r.i : r.d;
}

kiln_status kiln_cpu_fused_reduce(const kiln_dispatch *d, void *const *base)
{
    const kiln_fused_reduce_params *p = (const void *)d->params;
    const int nin = p->ninputs;
    const int op = p->mode & 15, mask = (p->mode >> 4) & 15;
    const int64_t split = p->mode >> 8 > 1 ? p->mode >> 8 : 1;
    if (!program_ok(d, nin) || op > KILN_KREDUCE_MIN)
        return KILN_ERROR_INVALID_ARGUMENT;
    int64_t nout = 1, nred = 1;
    for (int dim = 0; dim < KILN_FUSED_DIMS; dim++) {
        if (mask & KILN_FUSED_RED_BIT(dim))
            nred *= p->shape[dim];
        else
            nout *= p->shape[dim];
    }
    double scale = kiln_cpu_scalar(d->dtype, p->scale_lo, p->scale_hi);
    for (int64_t v = 0; v < nout * split; v++) {
        int64_t o, r0, r1;
        kiln_cpu_reduce_slice(v, split, nred, &o, &r0, &r1);
        kiln_cpu_reducer red;
        kiln_cpu_reducer_init(&red, op);
        for (int64_t r = r0; r < r1; r++) {
            /* o over the kept dimensions, r over the reduced ones, each
             * row-major. */
            int64_t idx[KILN_FUSED_DIMS], ro = o, rr = r;
            for (int dim = KILN_FUSED_DIMS - 1; dim >= 0; dim--) {
                int64_t *rest = mask & KILN_FUSED_RED_BIT(dim) ? &rr : &ro;
                idx[dim] = *rest % p->shape[dim];
                *rest /= p->shape[dim];
            }
            fused_reg val =
                eval_at(d, base, nin, p->off_in, p->stride_in, idx);
            kiln_cpu_reducer_add(&red, d->dtype, reg_value(d->dtype, val));
        }
        kiln_cpu_store(base[nin], d->dtype, p->off_out + v,
                       kiln_cpu_reducer_result(&red, d->dtype, scale));
    }
    return KILN_OK;
}
