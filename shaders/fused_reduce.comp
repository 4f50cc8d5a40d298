/*
 * fused_reduce.comp - a fused elementwise program as the prologue of a
 * reduction (KILN_K_FUSED_REDUCE, lib/queue/kernels_fused.h): reduce.comp
 * with the program's value (fused_program.glsl) where it loads an element,
 * the same fold and tree (reduce_common.glsl), so the result equals
 * fused.comp followed by reduce.comp bit for bit.
 * Bindings as fused.comp.  One workgroup per output, grid-stride over the
 * outputs in x.  Tunables: workgroup size (x only).
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

/* mode: op | reduced-dimension mask << 4 | split << 8 */
#define KILN_FUSED_PARAMS_HEAD                                            \
    int mode; int ninputs; int off_out; uint scale_lo; uint scale_hi;
#include "fused_program.glsl"
#include "reduce_common.glsl"

bool reduced(int d)
{
    return ((p.mode >> 4) & (4 >> d)) != 0;
}

/* The number of outputs (kept dimensions) or of reduced elements. */
uint count(bool red)
{
    uint n = 1u;
    for (int d = 0; d < KILN_FUSED_DIMS; d++)
        if (reduced(d) == red)
            n *= uint(p.shape[d]);
    return n;
}

/* The 3-D index of output @o's reduced element @r (each row-major over
 * its dimensions). */
void index_of(uint o, uint r, out int idx[KILN_FUSED_DIMS])
{
    for (int d = KILN_FUSED_DIMS - 1; d >= 0; d--) {
        uint s = uint(p.shape[d]);
        if (reduced(d)) {
            idx[d] = int(r % s);
            r /= s;
        } else {
            idx[d] = int(o % s);
            o /= s;
        }
    }
}

/* The one reduced dimension, or -1 when there are more (or none). */
int single_reduced_dim()
{
    int rd = -1;
    for (int d = 0; d < KILN_FUSED_DIMS; d++)
        if (reduced(d))
            rd = rd < 0 ? d : KILN_FUSED_DIMS;
    return rd < KILN_FUSED_DIMS ? rd : -1;
}

void main()
{
    uint lid = gl_LocalInvocationID.x;
    uint nout = count(false), nred = count(true);
    int op = p.mode & 15;
    uint split = uint(max(p.mode >> 8, 1));
    /* One reduced dimension (most layouts): element r of an output is at
     * its base + r * that dimension's stride, no division per element. */
    int rd = single_reduced_dim();
    for (uint v = gl_WorkGroupID.x; v < nout * split; v += gl_NumWorkGroups.x) {
        uint r0, r1;
        uint o = reduce_slice(v, split, nred, r0, r1);
        T acc = fold_identity(op), c = T(0);
        int idx[KILN_FUSED_DIMS];
        if (rd >= 0) {
            index_of(o, 0u, idx);
            int base[KILN_FUSED_MAX_INPUTS], step[KILN_FUSED_MAX_INPUTS];
            for (int k = 0; k < KILN_FUSED_MAX_INPUTS; k++) {
                base[k] = k < NINPUTS ? fused_offset(k, idx[0], idx[1], idx[2])
                                      : 0;
                step[k] = k < NINPUTS
                              ? p.stride_in[k * KILN_FUSED_DIMS + rd] : 0;
            }
            for (uint r = r0 + lid; r < r1; r += gl_WorkGroupSize.x) {
                int at[KILN_FUSED_MAX_INPUTS];
                for (int k = 0; k < KILN_FUSED_MAX_INPUTS; k++)
                    at[k] = base[k] + int(r) * step[k];
                fold_add(op, acc, c, fused_value_at(at));
            }
        } else {
            for (uint r = r0 + lid; r < r1; r += gl_WorkGroupSize.x) {
                index_of(o, r, idx);
                fold_add(op, acc, c, fused_value(idx[0], idx[1], idx[2]));
            }
        }
        T val = group_combine(op, fold_result(op, acc, c), lid);
        if (lid == 0u)
            store(p.off_out + int(v),
                  reduce_finish(op, val, p.scale_lo, p.scale_hi));
    }
}
