/*
 * kernel_table.c - the one table of per-kernel facts (kernel_table.h).
 *
 * The shared-memory formulas repeat the declarations in kernels/<family>.cl
 * and shaders/<name>.comp; a formula that says less than a kernel declares
 * would let a dispatch through that the driver then refuses, so keep them
 * in step.
 */
#include "queue/kernel_table.h"

#include "queue/kernels_fused.h"

static uint64_t threads(const kiln_dispatch *d)
{
    return (uint64_t)d->local[0] * d->local[1] * d->local[2];
}

/* reduce.cl: part[NTHREADS]; reduce.comp: partial[gl_WorkGroupSize.x]
 * (the op layer uses local = (n, 1, 1), where the two agree). */
static uint64_t reduce_shared(const kiln_dispatch *d)
{
    return threads(d) * kiln_dtype_size(d->dtype);
}

/* One value of T and one i32 index per thread. */
static uint64_t argreduce_shared(const kiln_dispatch *d)
{
    return threads(d) * (kiln_dtype_size(d->dtype) + 4);
}

/* Tiles As[TK][BM] and Bs[TK][BN], BM = LY*RM, BN = LX*RN. */
static uint64_t gemm_shared(const kiln_dispatch *d)
{
    uint64_t bm = (uint64_t)d->local[1] * (uint32_t)d->consts[0];
    uint64_t bn = (uint64_t)d->local[0] * (uint32_t)d->consts[1];
    return (bm + bn) * (uint32_t)d->consts[2] * kiln_dtype_size(d->dtype);
}

/* Zero or negative tile sizes would declare empty arrays (GLSL refuses the
 * specialisation at pipeline creation, OpenCL fails the build). */
static const char *gemm_invalid(const kiln_dispatch *d)
{
    if (d->consts[0] < 1 || d->consts[1] < 1 || d->consts[2] < 1)
        return "gemm tile constants must be >= 1";
    return NULL;
}

/* softmax.cl / softmax*.comp: part[NTHREADS] of T, one per thread. */
static uint64_t softmax_shared(const kiln_dispatch *d)
{
    return threads(d) * kiln_dtype_size(d->dtype);
}

int kiln_kernel_program_inputs(const kiln_dispatch *d)
{
    if (d->kernel == KILN_K_FUSED)
        return ((const kiln_fused_params *)(const void *)d->params)->ninputs;
    if (d->kernel == KILN_K_FUSED_REDUCE)
        return ((const kiln_fused_reduce_params *)(const void *)d->params)
            ->ninputs;
    return 0;
}

/* The program and the input count shape the generated kernel (the OpenCL
 * source, the Vulkan binding of the output): outside these bounds a backend
 * would index past its arrays. */
static const char *fused_invalid(const kiln_dispatch *d)
{
    int ninputs = kiln_kernel_program_inputs(d);
    if (d->program_len < 1 || d->program_len > KILN_FUSED_MAX_INSTRS)
        return "fused program length must be 1 to 16";
    if (ninputs < 1 || ninputs > KILN_FUSED_MAX_INPUTS ||
        d->nbindings != ninputs + 1)
        return "fused kernel needs 1 to 6 inputs bound before its output";
    return NULL;
}

/* Unset fields are 0: no i32, no dtype2, no shared memory, no checks. */
static const kiln_kernel_desc table[KILN_KERNEL_COUNT] = {
    [KILN_K_FILL] = {.name = "fill", .cl_family = "elementwise",
                     .int_ok = 1},
    [KILN_K_CONVERT] = {.name = "convert", .cl_family = "elementwise",
                        .uses_dtype2 = 1, .int_ok = 1},
    [KILN_K_UNARY] = {.name = "unary", .cl_family = "elementwise",
                      .int_ok = 1},
    [KILN_K_BINARY] = {.name = "binary", .cl_family = "elementwise",
                       .int_ok = 1},
    [KILN_K_SELECT] = {.name = "select", .cl_family = "elementwise",
                       .int_ok = 1},
    [KILN_K_REDUCE] = {.name = "reduce", .cl_family = "reduce", .int_ok = 1,
                       .shared_bytes = reduce_shared},
    [KILN_K_ARGREDUCE] = {.name = "argreduce", .cl_family = "reduce",
                          .int_ok = 1, .shared_bytes = argreduce_shared},
    [KILN_K_GEMM] = {.name = "gemm", .cl_family = "gemm",
                     .shared_bytes = gemm_shared, .invalid = gemm_invalid},
    [KILN_K_LRN] = {.name = "lrn", .cl_family = "norm"},
    [KILN_K_LRN_BACKWARD] = {.name = "lrn_backward", .cl_family = "norm"},
    [KILN_K_GATHER_ROWS] = {.name = "gather_rows", .cl_family = "norm",
                            .int_ok = 1},
    [KILN_K_SCATTER_ROWS] = {.name = "scatter_rows", .cl_family = "norm"},
    /* Convolution and pooling: float only, no shared memory. */
    [KILN_K_IM2COL] = {.name = "im2col", .cl_family = "conv"},
    [KILN_K_COL2IM] = {.name = "col2im", .cl_family = "conv"},
    [KILN_K_POOL] = {.name = "pool", .cl_family = "conv"},
    [KILN_K_POOL_BACKWARD] = {.name = "pool_backward", .cl_family = "conv"},
    [KILN_K_RNN_CELL] = {.name = "rnn_cell", .cl_family = "rnn"},
    [KILN_K_RNN_CELL_BACKWARD] = {.name = "rnn_cell_backward",
                                  .cl_family = "rnn"},
    /* Softmax family: float only; XENT's U is the labels' dtype. */
    [KILN_K_SOFTMAX] = {.name = "softmax", .cl_family = "softmax",
                        .shared_bytes = softmax_shared},
    [KILN_K_SOFTMAX_BACKWARD] = {.name = "softmax_backward",
                                 .cl_family = "softmax",
                                 .shared_bytes = softmax_shared},
    [KILN_K_SOFTMAX_XENT] = {.name = "softmax_xent", .cl_family = "softmax",
                             .uses_dtype2 = 1,
                             .shared_bytes = softmax_shared},
    /* i32 for Bernoulli only (the op layer refuses the rest). */
    [KILN_K_RANDOM] = {.name = "random", .cl_family = "random", .int_ok = 1},
    /* Fused parameter update of every optimizer: float only. */
    [KILN_K_OPTIMIZER] = {.name = "optimizer", .cl_family = "optimizer"},
    /* Generated elementwise chain: kernels/fused.cl plus a kernel function
     * written from the program (lib/opencl/cl_fused.c). */
    [KILN_K_FUSED] = {.name = "fused", .cl_family = "fused", .int_ok = 1,
                      .invalid = fused_invalid, .has_program = 1},
    /* The same program folded by reduce.cl's tree: that family plus a
     * generated kernel function; shared memory as KILN_K_REDUCE. */
    [KILN_K_FUSED_REDUCE] = {.name = "fused_reduce", .cl_family = "reduce",
                             .int_ok = 1, .shared_bytes = reduce_shared,
                             .invalid = fused_invalid, .has_program = 1},
};

const kiln_kernel_desc *kiln_kernel_describe(kiln_kernel_id id)
{
    if ((unsigned)id >= KILN_KERNEL_COUNT || !table[id].name)
        return NULL;
    return &table[id];
}

int kiln_kernel_has_variant(kiln_kernel_id id, kiln_dtype dtype)
{
    const kiln_kernel_desc *desc = kiln_kernel_describe(id);
    return desc && (dtype != KILN_I32 || desc->int_ok);
}

uint64_t kiln_kernel_shared_bytes(const kiln_kernel_desc *desc,
                                  const kiln_dispatch *d)
{
    return desc->shared_bytes ? desc->shared_bytes(d) : 0;
}

const char *kiln_kernel_invalid(const kiln_kernel_desc *desc,
                                const kiln_dispatch *d)
{
    return desc->invalid ? desc->invalid(d) : NULL;
}
