/*
 * kernels_fused.h - the fused elementwise kernel (KILN_K_FUSED): one
 * kernel that runs a short straight-line program of the UNARY, BINARY and
 * SELECT op codes over up to KILN_FUSED_MAX_INPUTS broadcast inputs and
 * writes one contiguous output.  The graph scheduler (lib/graph) turns a
 * chain of elementwise nodes into one such program.
 *
 * The program travels in kiln_dispatch.program (not in the parameter
 * block): the OpenCL backend generates C source from it (cached per
 * program and dtype), the Vulkan backend feeds it to shaders/fused.comp as
 * specialization constants (so the driver's compiler folds the
 * interpreter's switch away), the C reference interprets it.
 *
 * Registers: r0 .. r(ninputs-1) hold the inputs' elements; instruction j
 * writes register ninputs + j; the output is the last register written.
 * Every register has the dtype T of the dispatch (comparisons give 1 or 0
 * in T, exactly as KILN_K_BINARY).
 *
 * Instruction word: code | a << 8 | b << 16 | c << 24, where code is
 *   KILN_FUSED_UNARY  + unary op  (operand a),
 *   KILN_FUSED_BINARY + binary op (operands a, b),
 *   KILN_FUSED_SELECT             (a != 0 ? b : c),
 * with the semantics of kernels.h's unary/binary/select kernels, bit for
 * bit where those are exact.
 */
#ifndef KILN_KERNELS_FUSED_H
#define KILN_KERNELS_FUSED_H

#include <stdint.h>

#define KILN_FUSED_MAX_INPUTS 6
#define KILN_FUSED_MAX_INSTRS 16
#define KILN_FUSED_DIMS 3
/* The reduced dimensions of a KILN_K_FUSED_REDUCE layout: bit 4 >> d. */
#define KILN_FUSED_RED_BIT(d) (4 >> (d))

enum kiln_fused_code {
    KILN_FUSED_UNARY = 0x00,  /* + enum kiln_unary_op  (< 16)  */
    KILN_FUSED_BINARY = 0x10, /* + enum kiln_binary_op (< 16)  */
    KILN_FUSED_SELECT = 0x20,
};

static inline uint32_t kiln_fused_instr(int code, int a, int b, int c)
{
    return (uint32_t)code | (uint32_t)a << 8 | (uint32_t)b << 16 |
           (uint32_t)c << 24;
}

/* KILN_K_FUSED: out[off_out + i] = program(in_0[strided], ...), i < n.
 * Bindings 0 .. ninputs-1: inputs (T), binding ninputs: out (T).
 * Input k's element for the index i (decomposed over shape, outermost
 * first, unused leading dims 1) is at off_in[k] + sum_d idx_d *
 * stride_in[k][d].  30 words. */
typedef struct kiln_fused_params {
    int32_t n;
    int32_t ninputs;
    int32_t off_out;
    int32_t shape[KILN_FUSED_DIMS];
    int32_t off_in[KILN_FUSED_MAX_INPUTS];
    int32_t stride_in[KILN_FUSED_MAX_INPUTS][KILN_FUSED_DIMS];
} kiln_fused_params;

/* KILN_K_FUSED_REDUCE: the program as the prologue of a reduction.  Its
 * value at index (i0, i1, i2) of the 3-D layout `shape` (inputs read as
 * for KILN_K_FUSED) is reduced over the dimensions d whose bit
 * KILN_FUSED_RED_BIT(d) is set in the mask, with the op (enum
 * kiln_reduce_kop: SUM, MAX, MIN; a float SUM times `scale`, the mean),
 * one result per index of the kept dimensions, written contiguously (kept
 * dimensions row-major) from off_out; with a split S > 1 (as
 * KILN_K_REDUCE's) each output's slices write partial results to
 * off_out + o * S + s.  `mode` packs the three: op | mask << 4 | S << 8.
 * The reduced index r (reduced dimensions row-major) is
 * folded in the order KILN_K_REDUCE folds it for the same workgroup size,
 * and the tree is the same, so a fused reduction equals the fused
 * elementwise kernel followed by KILN_K_REDUCE bit for bit on each
 * backend.  Bindings as KILN_K_FUSED.  Workgroup: one group per output,
 * grid-stride over outputs (as KILN_K_REDUCE; local[0] threads).  32
 * words, the whole block: the output and reduced counts are products of
 * `shape` the kernel forms. */
#define KILN_FUSED_REDUCE_MODE(op, mask, split)                         \
    ((op) | (mask) << 4 | (split) << 8)
typedef struct kiln_fused_reduce_params {
    int32_t mode;
    int32_t ninputs;
    int32_t off_out;
    uint32_t scale_lo, scale_hi;
    int32_t shape[KILN_FUSED_DIMS];
    int32_t off_in[KILN_FUSED_MAX_INPUTS];
    int32_t stride_in[KILN_FUSED_MAX_INPUTS][KILN_FUSED_DIMS];
} kiln_fused_reduce_params;

#endif /* KILN_KERNELS_FUSED_H */
