/*
 * fused_reduce.c - a fused elementwise program as the prologue of a
 * reduction (KILN_K_FUSED_REDUCE, queue/kernels_fused.h): mean(square(a -
 * b)) in one kernel that never stores the squared differences.
 *
 * What a reduction means (checks, result shape, workgroup size) comes from
 * kiln__reduction, what a program may hold from kiln__fused_check, so this
 * equals kiln__fused followed by kiln_reduce, bit for bit on each backend
 * (the kernels fold in the same order; tests/test_fused.c checks it).
 */
#include <string.h>

#include "ops/ops.h"

_Static_assert(sizeof(kiln_fused_reduce_params) <= KILN_PARAM_BYTES,
               "the fused reduction's parameters fit the 128-byte block");

/* Kernel layout of @n inputs over @shape with the dimensions @reduced[d]
 * kept apart from the others: coalesced shape, strides and classes,
 * right-aligned to KILN_KDIMS.  1 when it fits KILN_FUSED_DIMS. */
static int layout(int n, kiln_tensor *const *inputs, int ndim,
                  const int64_t *shape, const char *reduced, int32_t *kshape,
                  int32_t kstride[][KILN_KDIMS], char *kcls)
{
    int32_t *rows[KILN_FUSED_MAX_INPUTS];
    for (int k = 0; k < n; k++)
        rows[k] = kstride[k];
    kiln__class_layout(n, inputs, ndim, shape, reduced, kshape, rows, kcls);
    for (int d = 0; d < KILN_KDIMS - KILN_FUSED_DIMS; d++)
        if (kshape[d] != 1)
            return 0;
    return 1;
}

int kiln__fused_reduce_fits(int n, kiln_tensor *const *inputs, int ndim,
                            const int64_t *shape, const char *reduced)
{
    /* kiln__fused_fits checks the counts and that every input broadcasts
     * to @shape; keeping the reduced dimensions apart can only need more
     * dimensions than its elementwise layout. */
    if (!reduced || !kiln__fused_fits(n, inputs, ndim, shape))
        return 0;
    int32_t kshape[KILN_KDIMS], kstride[KILN_FUSED_MAX_INPUTS][KILN_KDIMS];
    char kcls[KILN_KDIMS];
    return layout(n, inputs, ndim, shape, reduced, kshape, kstride, kcls);
}

kiln_tensor *kiln__fused_reduce(kiln_context *ctx, const char *call,
                                const kiln_fused_program *p, kiln_dtype dtype,
                                kiln_tensor *const *inputs, int ndim,
                                const int64_t *shape, kiln_reduce_op op,
                                int naxes, const int *axes, int keepdims)
{
    if (!ctx)
        return NULL;
    kiln_reduction r;
    if (kiln__fused_check(ctx, call, p, inputs, dtype, ndim, shape) !=
            KILN_OK ||
        kiln__reduction(ctx, call, op, dtype, ndim, shape, naxes, axes,
                        keepdims, &r) != KILN_OK)
        return NULL;
    int32_t kshape[KILN_KDIMS], kstride[KILN_FUSED_MAX_INPUTS][KILN_KDIMS];
    char kcls[KILN_KDIMS];
    if (!layout(p->ninputs, inputs, ndim, shape, r.reduced, kshape, kstride,
                kcls)) {
        kiln__fused_refuse_layout(ctx, call, p->ninputs, ndim, shape,
                                  " (reduced and kept dimensions apart)");
        return NULL;
    }
    kiln_tensor *out = kiln__reduce_alloc(ctx, call, dtype, &r);
    if (!out || r.nout == 0)
        return out;
    kiln_dispatch d;
    kiln__reduce_dispatch(ctx, &d, KILN_K_FUSED_REDUCE, dtype, &r);
    kiln_fused_reduce_params *fp = (kiln_fused_reduce_params *)d.params;
    int mask = 0;
    fp->ninputs = p->ninputs;
    fp->off_out = (int32_t)kiln__block_offset(out);
    /* Split: the slices' partial sums are scaled when combined. */
    kiln__scalar_bits(dtype, r.split > 1 ? 1.0 : r.scale, &fp->scale_lo,
                      &fp->scale_hi);
    const int lead = KILN_KDIMS - KILN_FUSED_DIMS;
    for (int dim = 0; dim < KILN_FUSED_DIMS; dim++) {
        fp->shape[dim] = kshape[lead + dim];
        if (kcls[lead + dim])
            mask |= KILN_FUSED_RED_BIT(dim);
    }
    fp->mode = KILN_FUSED_REDUCE_MODE(r.kop, mask, (int32_t)r.split);
    for (int k = 0; k < p->ninputs; k++) {
        fp->off_in[k] = (int32_t)kiln__block_offset(inputs[k]);
        for (int dim = 0; dim < KILN_FUSED_DIMS; dim++)
            fp->stride_in[k][dim] = kstride[k][lead + dim];
        kiln__bind(&d, inputs[k], KILN_ACCESS_READ); /* binding k */
    }
    kiln__bind(&d, out, KILN_ACCESS_WRITE);
    d.program_len = p->ninstr;
    memcpy(d.program, p->instr, sizeof(uint32_t) * (size_t)p->ninstr);
    if (kiln__launch(ctx, call, &d, r.kop) != KILN_OK) {
        kiln_tensor_free(out);
        return NULL;
    }
    return kiln__reduce_finish(ctx, call, out, &r);
}
