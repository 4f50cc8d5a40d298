/*
 * fused.comp - the fused elementwise kernel (KILN_K_FUSED,
 * lib/queue/kernels_fused.h): an interpreter for a straight-line program of
 * UNARY, BINARY and SELECT instructions over up to 6 broadcast inputs,
 * writing one contiguous output.  The interpreter, its specialization
 * constants and bindings: fused_program.glsl.  Grid-stride over n in x.
 * Tunables: workgroup size only.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

#define KILN_FUSED_PARAMS_HEAD int n; int ninputs; int off_out;
#include "fused_program.glsl"

void main()
{
    /* Most layouts coalesce to one dimension: skip the divisions. */
    bool one_dim = p.shape[0] == 1 && p.shape[1] == 1;
    uint s1 = uint(p.shape[1]), s2 = uint(p.shape[2]);
    KILN_FOR_EACH(i, p.n) {
        int i0 = 0, i1 = 0, i2 = int(i);
        if (!one_dim) {
            uint rest = i / s2;
            i2 = int(i % s2);
            i1 = int(rest % s1);
            i0 = int(rest / s1);
        }
        store(p.off_out + int(i), fused_value(i0, i1, i2));
    }
}
