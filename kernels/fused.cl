/*
 * fused.cl - the fixed part of the fused elementwise kernels (KILN_K_FUSED,
 * lib/queue/kernels_fused.h).
 *
 * A fused program is not a build constant of one kernel: lib/opencl/
 * cl_fused.c writes a kernel function kiln_fused for each program (one C
 * expression per instruction, calling common.cl's kiln_unary_op and
 * kiln_binary_op with constant op codes, so the results are those of
 * elementwise.cl's kernels) and appends it to this file.  The program is
 * built with FP_CONTRACT OFF: each instruction rounds on its own, as the
 * separate kernels do.
 *
 * Bindings (kernel arguments) 0 .. ninputs-1: inputs, ninputs: out, then
 * the parameter block.  Layout: one work-item per element, grid-stride over
 * n, any grid.  Tunables: the workgroup size only.
 */

#define FUSED_DIMS 3
#define FUSED_MAX_INPUTS 6

typedef struct {
    int n, ninputs, off_out;
    int shape[FUSED_DIMS];
    int off_in[FUSED_MAX_INPUTS];
    int stride_in[FUSED_MAX_INPUTS][FUSED_DIMS];
    uint pad[2];
} fused_params;

/* Element offset of input k at index (i0, i1, i2) of the 3-D layout. */
#define FUSED_AT(p, k, i0, i1, i2)                                          \
    ((p).off_in[k] + (i0) * (p).stride_in[k][0] +                          \
     (i1) * (p).stride_in[k][1] + (i2) * (p).stride_in[k][2])
