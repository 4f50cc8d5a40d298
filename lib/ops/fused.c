/*
 * fused.c - the entry points of the fused elementwise kernel (KILN_K_FUSED,
 * queue/kernels_fused.h): check a straight-line program of UNARY, BINARY
 * and SELECT instructions and its inputs, lay the inputs out in at most
 * KILN_FUSED_DIMS coalesced dimensions and launch one kernel.
 *
 * The graph scheduler (lib/graph) builds the programs from chains of
 * elementwise nodes; everything it could get wrong is refused here with a
 * message, so no backend ever sees a malformed program.
 */
#include <stdio.h>
#include <string.h>

#include "ops/ops.h"

_Static_assert(sizeof(kiln_fused_params) <= KILN_PARAM_BYTES,
               "the fused parameter block fits the 128-byte block");
_Static_assert(KILN_FUSED_MAX_INPUTS + 1 <= KILN_MAX_BINDINGS,
               "inputs and the output fit the binding slots");

static const char *const unary_names[KILN_UNARY_COUNT] = {
    "neg", "abs", "square", "relu", "exp", "log", "sqrt", "sigmoid", "tanh"};
static const char *const binary_names[KILN_BINARY_COUNT] = {
    "add", "sub", "mul", "div", "minimum", "maximum", "pow",
    "eq", "ne", "lt", "le", "gt", "ge"};

/* What instruction word @w does: the kernel that runs the same op alone
 * (for the device's supports query), its op code there, its operand count
 * and its name.  0 for an unknown code. */
static int decode(uint32_t w, kiln_kernel_id *kernel, int *op, int *nops,
                  const char **name)
{
    int code = (int)(w & 0xff);
    if (code < KILN_FUSED_UNARY + KILN_UNARY_COUNT) {
        *kernel = KILN_K_UNARY;
        *op = code - KILN_FUSED_UNARY;
        *nops = 1;
        *name = unary_names[*op];
    } else if (code >= KILN_FUSED_BINARY &&
               code < KILN_FUSED_BINARY + KILN_BINARY_COUNT) {
        *kernel = KILN_K_BINARY;
        *op = code - KILN_FUSED_BINARY;
        *nops = 2;
        *name = binary_names[*op];
    } else if (code == KILN_FUSED_SELECT) {
        *kernel = KILN_K_SELECT;
        *op = -1;
        *nops = 3;
        *name = "select";
    } else {
        return 0;
    }
    return 1;
}

/* The counts of @p; the instructions are checked by check_instructions. */
static kiln_status check_counts(kiln_context *ctx, const char *call,
                                const kiln_fused_program *p)
{
    if (!p)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: the fused program is NULL", call);
    if (p->ninputs < 1 || p->ninputs > KILN_FUSED_MAX_INPUTS)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: fused program with %d inputs (1 to %d)", call,
                           p->ninputs, KILN_FUSED_MAX_INPUTS);
    if (p->ninstr < 1 || p->ninstr > KILN_FUSED_MAX_INSTRS)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: fused program with %d instructions (1 to %d)",
                           call, p->ninstr, KILN_FUSED_MAX_INSTRS);
    return KILN_OK;
}

/* Every instruction of @p: a known code, operands among the registers
 * written before it (unused operand fields 0, so one program has one
 * encoding and one cache entry), float-only ops only on floats, and each
 * op available on the device for @dtype, as its own kernel would be. */
static kiln_status check_instructions(kiln_context *ctx, const char *call,
                                      const kiln_fused_program *p,
                                      kiln_dtype dtype)
{
    kiln_queue *q = ctx->queue;
    for (int j = 0; j < p->ninstr; j++) {
        uint32_t w = p->instr[j];
        kiln_kernel_id kernel;
        int op, nops;
        const char *name;
        if (!decode(w, &kernel, &op, &nops, &name))
            return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                               "%s: fused instruction %d (0x%08x) has the "
                               "unknown op code 0x%02x", call, j,
                               (unsigned)w, (unsigned)(w & 0xff));
        int written = p->ninputs + j; /* r0 .. r(written-1) hold values */
        for (int k = 0; k < 3; k++) {
            int reg = (int)((w >> (8 * (k + 1))) & 0xff);
            if (k < nops && reg >= written)
                return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                   "%s: fused instruction %d (%s) reads r%d, "
                                   "but only r0..r%d are written before it "
                                   "(%d inputs)", call, j, name, reg,
                                   written - 1, p->ninputs);
            if (k >= nops && reg != 0)
                return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                   "%s: fused instruction %d (%s, 0x%08x) has "
                                   "operand %d set, but takes %d", call, j,
                                   name, (unsigned)w, k + 1, nops);
        }
        int float_only =
            (kernel == KILN_K_UNARY && op >= KILN_UNARY_FIRST_FLOAT_ONLY) ||
            (kernel == KILN_K_BINARY && op == KILN_BINARY_POW);
        if (float_only && !kiln__is_float(dtype))
            return kiln__error(ctx, KILN_ERROR_DTYPE,
                               "%s: fused instruction %d (%s) needs f32 or "
                               "f64, got %s", call, j, name,
                               kiln_dtype_name(dtype));
        if (q->vt->supports && !q->vt->supports(q, kernel, dtype, op))
            return kiln__error(ctx, KILN_ERROR_UNSUPPORTED,
                               "%s: fused instruction %d (%s) is not "
                               "available for %s on %s (%s backend)", call,
                               j, name, kiln_dtype_name(dtype),
                               ctx->device.name, q->vt->name);
    }
    return KILN_OK;
}

/* Kernel layout of @n inputs over @shape: the coalesced shape and strides,
 * right-aligned to KILN_KDIMS.  Returns 1 when it fits KILN_FUSED_DIMS. */
static int layout(int n, kiln_tensor *const *inputs, int ndim,
                  const int64_t *shape, int32_t *kshape,
                  int32_t kstride[][KILN_KDIMS])
{
    int32_t *rows[KILN_FUSED_MAX_INPUTS];
    for (int k = 0; k < n; k++)
        rows[k] = kstride[k];
    kiln__elementwise_layout(n, inputs, ndim, shape, kshape, rows);
    for (int d = 0; d < KILN_KDIMS - KILN_FUSED_DIMS; d++)
        if (kshape[d] != 1)
            return 0;
    return 1;
}

int kiln__fused_fits(int n, kiln_tensor *const *inputs, int ndim,
                     const int64_t *shape)
{
    if (n < 1 || n > KILN_FUSED_MAX_INPUTS || !inputs || ndim < 0 ||
        ndim > KILN_MAX_DIMS || (ndim > 0 && !shape))
        return 0;
    int64_t stride[KILN_MAX_DIMS];
    for (int k = 0; k < n; k++)
        if (!inputs[k] ||
            kiln__broadcast_strides(inputs[k], ndim, shape, stride) != 0)
            return 0;
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0)
            return 0;
    if (kiln__numel(ndim, shape) == 0)
        return 1; /* no kernel runs */
    int32_t kshape[KILN_KDIMS], kstride[KILN_FUSED_MAX_INPUTS][KILN_KDIMS];
    return layout(n, inputs, ndim, shape, kshape, kstride);
}

/* The inputs: none NULL (a NULL from an earlier failure adds no message),
 * all from @ctx, all of @dtype, each broadcasting to @shape, and together
 * a layout the kernel takes. */
static kiln_status check_inputs(kiln_context *ctx, const char *call,
                                const kiln_fused_program *p,
                                kiln_tensor *const *inputs, kiln_dtype dtype,
                                int ndim, const int64_t *shape)
{
    char a[160], b[160];
    if (!inputs)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: the input array is NULL", call);
    kiln_context *owner = kiln__args(call, p->ninputs, inputs);
    if (!owner)
        return ctx->status != KILN_OK
                   ? ctx->status
                   : kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                 "%s: an input is unusable", call);
    if (owner != ctx)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: the inputs belong to another context", call);
    if ((unsigned)dtype > KILN_F64)
        return kiln__error(ctx, KILN_ERROR_DTYPE, "%s: unknown dtype %d",
                           call, (int)dtype);
    for (int k = 0; k < p->ninputs; k++)
        if (inputs[k]->dtype != dtype)
            return kiln__error(ctx, KILN_ERROR_DTYPE,
                               "%s: input %d is %s, the fused kernel runs in "
                               "%s", call, k, kiln_dtype_name(inputs[k]->dtype),
                               kiln_dtype_name(dtype));
    if (ndim < 0 || ndim > KILN_MAX_DIMS || (ndim > 0 && !shape))
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: output of %d dimensions%s (0 to %d)", call,
                           ndim, ndim > 0 && !shape ? " without a shape" : "",
                           KILN_MAX_DIMS);
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0)
            return kiln__error(ctx, KILN_ERROR_SHAPE,
                               "%s: output shape %s has a negative size",
                               call, kiln__shape_string(ndim, shape, a,
                                                        sizeof a));
    int64_t stride[KILN_MAX_DIMS];
    for (int k = 0; k < p->ninputs; k++)
        if (kiln__broadcast_strides(inputs[k], ndim, shape, stride) != 0)
            return kiln__error(
                ctx, KILN_ERROR_SHAPE,
                "%s: input %d of shape %s does not broadcast to %s", call, k,
                kiln__shape_string(inputs[k]->ndim, inputs[k]->shape, a,
                                   sizeof a),
                kiln__shape_string(ndim, shape, b, sizeof b));
    return KILN_OK;
}

kiln_status kiln__fused_check(kiln_context *ctx, const char *call,
                              const kiln_fused_program *p,
                              kiln_tensor *const *inputs, kiln_dtype dtype,
                              int ndim, const int64_t *shape)
{
    kiln_status s = check_counts(ctx, call, p);
    if (s == KILN_OK)
        s = check_inputs(ctx, call, p, inputs, dtype, ndim, shape);
    if (s == KILN_OK)
        s = check_instructions(ctx, call, p, dtype);
    return s;
}

kiln_status kiln__fused_refuse_layout(kiln_context *ctx, const char *call,
                                      int ninputs, int ndim,
                                      const int64_t *shape, const char *what)
{
    char a[160];
    return kiln__error(ctx, KILN_ERROR_UNSUPPORTED,
                       "%s: %d inputs over %s%s need more than %d dimensions "
                       "after merging the contiguous ones (the fused kernel "
                       "takes %d)", call, ninputs,
                       kiln__shape_string(ndim, shape, a, sizeof a), what,
                       KILN_FUSED_DIMS, KILN_FUSED_DIMS);
}

/* Enqueues @p over @inputs into contiguous @out (all checked). */
static kiln_status launch(kiln_context *ctx, const char *call,
                          const kiln_fused_program *p,
                          kiln_tensor *const *inputs, kiln_tensor *out)
{
    int64_t n = kiln_tensor_numel(out);
    if (n == 0)
        return KILN_OK;
    kiln_dispatch d;
    kiln__dispatch_init(ctx, &d, KILN_K_FUSED, out->dtype, n);
    kiln_fused_params *fp = (kiln_fused_params *)d.params;
    fp->n = (int32_t)n;
    fp->ninputs = p->ninputs;
    fp->off_out = (int32_t)kiln__block_offset(out);
    int32_t kshape[KILN_KDIMS], kstride[KILN_FUSED_MAX_INPUTS][KILN_KDIMS];
    layout(p->ninputs, inputs, out->ndim, out->shape, kshape, kstride);
    const int lead = KILN_KDIMS - KILN_FUSED_DIMS;
    for (int dim = 0; dim < KILN_FUSED_DIMS; dim++)
        fp->shape[dim] = kshape[lead + dim];
    for (int k = 0; k < p->ninputs; k++) {
        fp->off_in[k] = (int32_t)kiln__block_offset(inputs[k]);
        for (int dim = 0; dim < KILN_FUSED_DIMS; dim++)
            fp->stride_in[k][dim] = kstride[k][lead + dim];
        /* One binding per input, also for the same tensor twice: the
         * kernel reads input k through binding k. */
        kiln__bind(&d, inputs[k], KILN_ACCESS_READ);
    }
    kiln__bind(&d, out, KILN_ACCESS_WRITE);
    d.program_len = p->ninstr;
    memcpy(d.program, p->instr, sizeof(uint32_t) * (size_t)p->ninstr);
    return kiln__launch(ctx, call, &d, -1);
}

kiln_tensor *kiln__fused(kiln_context *ctx, const char *call,
                         const kiln_fused_program *p, kiln_dtype dtype,
                         kiln_tensor *const *inputs, int ndim,
                         const int64_t *shape)
{
    if (!ctx)
        return NULL;
    if (kiln__fused_check(ctx, call, p, inputs, dtype, ndim, shape) !=
        KILN_OK)
        return NULL;
    if (!kiln__fused_fits(p->ninputs, inputs, ndim, shape)) {
        kiln__fused_refuse_layout(ctx, call, p->ninputs, ndim, shape, "");
        return NULL;
    }
    kiln_tensor *out = kiln__tensor_alloc(ctx, call, dtype, ndim, shape);
    if (out && launch(ctx, call, p, inputs, out) != KILN_OK) {
        kiln_tensor_free(out);
        return NULL;
    }
    return out;
}

/* Does input @t read, for every output index, the element @out writes
 * there (so an in-place update is safe element by element)? */
static int same_elements(const kiln_tensor *t, const kiln_tensor *out)
{
    int64_t stride[KILN_MAX_DIMS];
    if (t->storage != out->storage || t->offset != out->offset ||
        kiln__broadcast_strides(t, out->ndim, out->shape, stride) != 0)
        return 0;
    for (int d = 0; d < out->ndim; d++)
        if (out->shape[d] > 1 && stride[d] != out->stride[d])
            return 0;
    return 1;
}

kiln_status kiln__fused_into(kiln_context *ctx, const char *call,
                             const kiln_fused_program *p,
                             kiln_tensor *const *inputs, kiln_tensor *out)
{
    if (!ctx)
        return KILN_ERROR_INVALID_ARGUMENT;
    kiln_status s = check_counts(ctx, call, p);
    if (s != KILN_OK)
        return s;
    if (!kiln__args(call, 1, &out))
        return ctx->status != KILN_OK
                   ? ctx->status
                   : kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                 "%s: the output is unusable", call);
    if (out->ctx != ctx)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: the output belongs to another context", call);
    if (!kiln_tensor_is_contiguous(out))
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: the output must be contiguous", call);
    if ((s = check_inputs(ctx, call, p, inputs, out->dtype, out->ndim,
                          out->shape)) != KILN_OK ||
        (s = check_instructions(ctx, call, p, out->dtype)) != KILN_OK)
        return s;
    if (!kiln__fused_fits(p->ninputs, inputs, out->ndim, out->shape))
        return kiln__fused_refuse_layout(ctx, call, p->ninputs, out->ndim,
                                         out->shape, "");
    int staged = 0;
    for (int k = 0; k < p->ninputs; k++)
        if (inputs[k]->storage == out->storage &&
            !same_elements(inputs[k], out))
            staged = 1;
    if (!staged)
        return launch(ctx, call, p, inputs, out);
    /* An input overlaps the output another way (a transposed or broadcast
     * view of it): element i may be read after another thread wrote it, so
     * compute into a temporary and copy. */
    kiln_tensor *tmp = kiln__tensor_alloc(ctx, call, out->dtype, out->ndim,
                                          out->shape);
    if (!tmp)
        return ctx->status;
    s = launch(ctx, call, p, inputs, tmp);
    if (s == KILN_OK)
        s = kiln__convert(ctx, call, out, tmp);
    kiln_tensor_free(tmp);
    return s;
}
