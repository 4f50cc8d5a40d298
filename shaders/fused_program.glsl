/*
 * fused_program.glsl - the interpreter of a fused elementwise program
 * (lib/queue/kernels_fused.h), shared by fused.comp and fused_reduce.comp.
 *
 * The program arrives as specialization constants (lib/vulkan/
 * vk_pipeline.c): 20 = instruction count, 21..36 = the 16 instruction
 * words, 37 = the number of inputs (the params' ninputs).  Every register
 * index, op code and the output's binding is therefore a constant once the
 * pipeline is created, and the driver's compiler folds the interpreter
 * (the 16 steps are written out, the op switches and the register array
 * reduce to straight-line code).  The op bodies are elementwise_ops.glsl's,
 * the same as unary.comp's and binary.comp's, bit for bit.
 *
 * Bindings 0 .. ninputs-1: inputs, binding ninputs: out.  All 7 bindings
 * are declared and statically used whatever the program, so the backend
 * binds a buffer to every one of them (vk_queue.c fills the slots the
 * dispatch leaves empty; the shader never touches those).
 *
 * The push constants `p`: the includer defines KILN_FUSED_PARAMS_HEAD, its
 * own leading fields, before including this file; every block ends with
 * the layout's shape and the inputs' offsets and strides.
 */
#include "elementwise_ops.glsl"

#define KILN_FUSED_MAX_INPUTS 6
#define KILN_FUSED_MAX_INSTRS 16
#define KILN_FUSED_DIMS 3
#define KILN_FUSED_REGS (KILN_FUSED_MAX_INPUTS + KILN_FUSED_MAX_INSTRS)

layout(constant_id = 20) const int NINSTR = 1;
layout(constant_id = 21) const uint W0 = 0u;
layout(constant_id = 22) const uint W1 = 0u;
layout(constant_id = 23) const uint W2 = 0u;
layout(constant_id = 24) const uint W3 = 0u;
layout(constant_id = 25) const uint W4 = 0u;
layout(constant_id = 26) const uint W5 = 0u;
layout(constant_id = 27) const uint W6 = 0u;
layout(constant_id = 28) const uint W7 = 0u;
layout(constant_id = 29) const uint W8 = 0u;
layout(constant_id = 30) const uint W9 = 0u;
layout(constant_id = 31) const uint W10 = 0u;
layout(constant_id = 32) const uint W11 = 0u;
layout(constant_id = 33) const uint W12 = 0u;
layout(constant_id = 34) const uint W13 = 0u;
layout(constant_id = 35) const uint W14 = 0u;
layout(constant_id = 36) const uint W15 = 0u;
layout(constant_id = 37) const int NINPUTS = 1;

/* Binding 0 is always an input and binding 6 only ever the output; 1..5
 * are either, depending on NINPUTS. */
layout(std430, set = 0, binding = 0) readonly buffer B0 { T d[]; } b0;
layout(std430, set = 0, binding = 1) buffer B1 { T d[]; } b1;
layout(std430, set = 0, binding = 2) buffer B2 { T d[]; } b2;
layout(std430, set = 0, binding = 3) buffer B3 { T d[]; } b3;
layout(std430, set = 0, binding = 4) buffer B4 { T d[]; } b4;
layout(std430, set = 0, binding = 5) buffer B5 { T d[]; } b5;
layout(std430, set = 0, binding = 6) writeonly buffer B6 { T d[]; } b6;

layout(push_constant, std430) uniform Params {
    KILN_FUSED_PARAMS_HEAD
    int shape[KILN_FUSED_DIMS];
    int off_in[KILN_FUSED_MAX_INPUTS];
    int stride_in[KILN_FUSED_MAX_INPUTS * KILN_FUSED_DIMS]; /* [k][d] */
} p;

T load(int k, int at)
{
    switch (k) {
    case 0: return b0.d[at];
    case 1: return b1.d[at];
    case 2: return b2.d[at];
    case 3: return b3.d[at];
    case 4: return b4.d[at];
    case 5: return b5.d[at];
    }
    return T(0);
}

/* The output is binding NINPUTS. */
void store(int at, T v)
{
    switch (NINPUTS) {
    case 1: b1.d[at] = v; break;
    case 2: b2.d[at] = v; break;
    case 3: b3.d[at] = v; break;
    case 4: b4.d[at] = v; break;
    case 5: b5.d[at] = v; break;
    case 6: b6.d[at] = v; break;
    }
}

/* One instruction word: code | a << 8 | b << 16 | c << 24. */
T apply(uint w, T a, T b, T c)
{
    uint code = w & 0xffu;
    if (code < 0x10u)
        return kiln_unary_apply(int(code), a);
    if (code < 0x20u)
        return kiln_binary_apply(int(code) - 0x10, a, b);
    return !(a == T(0)) ? b : c; /* SELECT: NaN is true, -0.0 false */
}

/* Operand field @shift of word @w as a register index (clamped so that
 * even the steps a program does not use index inside the array). */
#define REG(w, shift) min(int(((w) >> (shift)) & 0xffu), KILN_FUSED_REGS - 1)

#define STEP(j, w)                                                        \
    if (j < NINSTR)                                                       \
        r[NINPUTS + j] = apply(w, r[REG(w, 8)], r[REG(w, 16)],            \
                               r[REG(w, 24)]);

#define LOAD(k)                                                           \
    if (k < NINPUTS)                                                      \
        r[k] = load(k, at[k]);

/* Input @k's element offset at index (i0, i1, i2) of the 3-D layout. */
int fused_offset(int k, int i0, int i1, int i2)
{
    return p.off_in[k] + i0 * p.stride_in[k * KILN_FUSED_DIMS] +
           i1 * p.stride_in[k * KILN_FUSED_DIMS + 1] +
           i2 * p.stride_in[k * KILN_FUSED_DIMS + 2];
}

/* The program's value with input k's element at @at[k]. */
T fused_value_at(int at[KILN_FUSED_MAX_INPUTS])
{
    T r[KILN_FUSED_REGS];
    for (int k = 0; k < KILN_FUSED_REGS; k++)
        r[k] = T(0);
    LOAD(0) LOAD(1) LOAD(2) LOAD(3) LOAD(4) LOAD(5)
    STEP(0, W0) STEP(1, W1) STEP(2, W2) STEP(3, W3)
    STEP(4, W4) STEP(5, W5) STEP(6, W6) STEP(7, W7)
    STEP(8, W8) STEP(9, W9) STEP(10, W10) STEP(11, W11)
    STEP(12, W12) STEP(13, W13) STEP(14, W14) STEP(15, W15)
    return r[NINPUTS + NINSTR - 1];
}

/* The program's value at index (i0, i1, i2) of the 3-D layout. */
T fused_value(int i0, int i1, int i2)
{
    int at[KILN_FUSED_MAX_INPUTS];
    for (int k = 0; k < KILN_FUSED_MAX_INPUTS; k++)
        at[k] = k < NINPUTS ? fused_offset(k, i0, i1, i2) : 0;
    return fused_value_at(at);
}
