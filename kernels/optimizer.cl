/*
 * optimizer.cl - KILN_K_OPTIMIZER: the fused parameter update of every
 * optimizer (SGD, momentum, Nesterov, Adagrad, RMSProp, Adam, AdamW,
 * Adadelta), selected by the kind field.
 *
 * Formulas and the parameter block: lib/queue/kernels_optimizer.h;
 * reference lib/cpu/cpu_optimizer.c.  Each element reads p, g and the
 * kind's state (s1, s2) once and writes p and the state once; the
 * computation is in T (Adam's bias corrections arrive precomputed).
 * FP_CONTRACT OFF: p - lr * g must round like the reference (no fma), so
 * plain SGD in f64 matches the host recurrence bit for bit.
 * Layout: p, g, s1, s2 dense from their offsets; one work-item per element,
 * grid-stride over n, any grid.  Tunables: the workgroup size only.
 */
#pragma OPENCL FP_CONTRACT OFF

typedef struct {
    int n, kind, off_p, off_g, off_s1, off_s2;
    uint lr_lo, lr_hi, mu_lo, mu_hi, damp_lo, damp_hi;
    uint b1_lo, b1_hi, b2_lo, b2_hi, rho_lo, rho_hi;
    uint eps_lo, eps_hi, wd_lo, wd_hi, bc1_lo, bc1_hi, bc2_lo, bc2_hi;
    uint omb1_lo, omb1_hi, omb2_lo, omb2_hi, omrho_lo, omrho_hi;
} optimizer_params;

#define OPT_SGD 0
#define OPT_MOMENTUM 1
#define OPT_NESTEROV 2
#define OPT_ADAGRAD 3
#define OPT_RMSPROP 4
#define OPT_ADAM 5
#define OPT_ADAMW 6
#define OPT_ADADELTA 7

KILN_KERNEL void kiln_optimizer(__global T *pw, __global const T *gw,
                                __global T *s1w, __global T *s2w,
                                __global const T *sw,
                                const optimizer_params P)
{
    optimizer_params q = P;
    T lr = T_FROM_BITS(q.lr_lo, q.lr_hi), mu = T_FROM_BITS(q.mu_lo, q.mu_hi);
    T damp = T_FROM_BITS(q.damp_lo, q.damp_hi);
    T b1 = T_FROM_BITS(q.b1_lo, q.b1_hi), b2 = T_FROM_BITS(q.b2_lo, q.b2_hi);
    T rho = T_FROM_BITS(q.rho_lo, q.rho_hi);
    T eps = T_FROM_BITS(q.eps_lo, q.eps_hi), wd = T_FROM_BITS(q.wd_lo, q.wd_hi);
    T bc1 = T_FROM_BITS(q.bc1_lo, q.bc1_hi);
    T bc2 = T_FROM_BITS(q.bc2_lo, q.bc2_hi);
    T omb1 = T_FROM_BITS(q.omb1_lo, q.omb1_hi);
    T omb2 = T_FROM_BITS(q.omb2_lo, q.omb2_hi);
    T omrho = T_FROM_BITS(q.omrho_lo, q.omrho_hi);
    if (q.kind & 0x100) { /* device scalars (kernels_optimizer.h) */
        lr = sw[q.lr_lo];
        bc1 = sw[q.lr_lo + 1];
        bc2 = sw[q.lr_lo + 2];
    }
    int kind = q.kind & 0xff;
    int has1 = kind != OPT_SGD;
    int has2 = kind == OPT_ADAM || kind == OPT_ADAMW || kind == OPT_ADADELTA;
    for (uint i = kiln_global_index(); i < (uint)q.n;
         i += kiln_global_count()) {
        T p = pw[q.off_p + (int)i], g = gw[q.off_g + (int)i];
        T s1 = has1 ? s1w[q.off_s1 + (int)i] : (T)0;
        T s2 = has2 ? s2w[q.off_s2 + (int)i] : (T)0;
        if (kind == OPT_ADAMW)
            p -= lr * wd * p;
        else
            g += wd * p;
        if (kind == OPT_SGD) {
            p -= lr * g;
        } else if (kind == OPT_MOMENTUM) {
            s1 = mu * s1 + damp * g;
            p -= lr * s1;
        } else if (kind == OPT_NESTEROV) {
            s1 = mu * s1 + damp * g;
            p -= lr * (g + mu * s1);
        } else if (kind == OPT_ADAGRAD) {
            s1 += g * g;
            p -= lr * g / (sqrt(s1) + eps);
        } else if (kind == OPT_RMSPROP) {
            s1 = rho * s1 + omrho * g * g;
            p -= lr * g / (sqrt(s1) + eps);
        } else if (kind == OPT_ADAM || kind == OPT_ADAMW) {
            s1 = b1 * s1 + omb1 * g;
            s2 = b2 * s2 + omb2 * g * g;
            p -= lr * (s1 / bc1) / (sqrt(s2 / bc2) + eps);
        } else if (kind == OPT_ADADELTA) {
            s1 = rho * s1 + omrho * g * g;
            T u = sqrt(s2 + eps) / sqrt(s1 + eps) * g;
            s2 = rho * s2 + omrho * u * u;
            p -= lr * u;
        }
        pw[q.off_p + (int)i] = p;
        if (has1)
            s1w[q.off_s1 + (int)i] = s1;
        if (has2)
            s2w[q.off_s2 + (int)i] = s2;
    }
}
