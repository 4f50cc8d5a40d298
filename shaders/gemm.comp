/*
 * gemm.comp - batched C = alpha op(A) op(B) + beta C (KILN_K_GEMM,
 * lib/queue/kernels.h); transposes and broadcast batches are strides.
 *
 * Workgroup (LX, LY) = local size; each invocation computes RM x RN
 * elements of C (rows ty + i*LY, columns tx + j*LX, so neighbouring
 * invocations read neighbouring shared words), a group a BM x BN tile with
 * BM = LY*RM, BN = LX*RN.  K is walked in steps of TK through shared tiles
 * As[TK][BM] and Bs[TK][BN], loaded along whichever of A's (B's) strides
 * is 1 so global reads coalesce.  Every edge is bounds-checked: any M, N,
 * K.  Groups loop grid-stride over tiles (x: along N, y: along M) and
 * batches (z).  beta == 0: C is not read (it may hold NaN).
 * Binding 0: A, 1: B, 2: C, 3: the epilogue's bias.  Tunables: local
 * size (LX, LY, 1), consts[0] = RM, consts[1] = RN, consts[2] = TK.
 * Shared memory: TK * (BM + BN) elements.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "elementwise_ops.glsl"

layout(std430, set = 0, binding = 0) readonly buffer A { T d[]; } a_;
layout(std430, set = 0, binding = 1) readonly buffer B { T d[]; } b_;
layout(std430, set = 0, binding = 2) buffer C { T d[]; } c_;
layout(std430, set = 0, binding = 3) readonly buffer Bias { T d[]; } bias_;

layout(push_constant, std430) uniform Params {
    int m, n, k, batch;
    int off_a, off_b, off_c;
    int a_sm, a_sk, a_sb;
    int b_sk, b_sn, b_sb;
    int c_sm, c_sb;
    uint alpha_lo, alpha_hi;
    uint beta_lo, beta_hi;
    int epilogue, off_bias, bias_sm, bias_sn;
} p;

const int RM = KILN_C0;
const int RN = KILN_C1;
const int TK = KILN_C2;
const uint LX = gl_WorkGroupSize.x;
const uint LY = gl_WorkGroupSize.y;
const int BM = int(LY) * RM;
const int BN = int(LX) * RN;

shared T As[TK * BM];
shared T Bs[TK * BN];

/* Stages A(m0.., k0..) and B(k0.., n0..) into shared memory, zero-padded. */
void load_tiles(int a0, int b0, int m0, int n0, int k0, int tid, int nt)
{
    bool a_rows = p.a_sk != 1; /* consecutive invocations walk m, else k */
    for (int i = tid; i < BM * TK; i += nt) {
        int mm = a_rows ? i % BM : i / TK;
        int kk = a_rows ? i / BM : i % TK;
        int gm = m0 + mm, gk = k0 + kk;
        As[kk * BM + mm] = gm < p.m && gk < p.k
                               ? a_.d[a0 + gm * p.a_sm + gk * p.a_sk]
                               : T(0);
    }
    bool b_cols = p.b_sn == 1; /* consecutive invocations walk n, else k */
    for (int i = tid; i < BN * TK; i += nt) {
        int nn = b_cols ? i % BN : i / TK;
        int kk = b_cols ? i / BN : i % TK;
        int gn = n0 + nn, gk = k0 + kk;
        Bs[kk * BN + nn] = gn < p.n && gk < p.k
                               ? b_.d[b0 + gk * p.b_sk + gn * p.b_sn]
                               : T(0);
    }
}

void main()
{
    int tx = int(gl_LocalInvocationID.x), ty = int(gl_LocalInvocationID.y);
    int tid = ty * int(LX) + tx, nt = int(LX * LY);
    int tiles_n = (p.n + BN - 1) / BN, tiles_m = (p.m + BM - 1) / BM;
    T alpha = T_FROM_BITS(p.alpha_lo, p.alpha_hi);
    T beta = T_FROM_BITS(p.beta_lo, p.beta_hi);
    T acc[RM * RN];
    T a_reg[RM];

    for (int z = int(gl_WorkGroupID.z); z < p.batch; z += int(gl_NumWorkGroups.z))
    for (int tm = int(gl_WorkGroupID.y); tm < tiles_m; tm += int(gl_NumWorkGroups.y))
    for (int tn = int(gl_WorkGroupID.x); tn < tiles_n; tn += int(gl_NumWorkGroups.x)) {
        int a0 = p.off_a + z * p.a_sb, b0 = p.off_b + z * p.b_sb;
        int m0 = tm * BM, n0 = tn * BN;
        for (int i = 0; i < RM * RN; i++)
            acc[i] = T(0);
        for (int k0 = 0; k0 < p.k; k0 += TK) {
            load_tiles(a0, b0, m0, n0, k0, tid, nt);
            barrier();
            for (int kk = 0; kk < TK; kk++) {
                for (int i = 0; i < RM; i++)
                    a_reg[i] = As[kk * BM + ty + i * int(LY)];
                for (int j = 0; j < RN; j++) {
                    T b = Bs[kk * BN + tx + j * int(LX)];
                    for (int i = 0; i < RM; i++)
                        acc[i * RN + j] += a_reg[i] * b;
                }
            }
            barrier(); /* before the next k step overwrites the tiles */
        }
        int c0 = p.off_c + z * p.c_sb;
        for (int i = 0; i < RM; i++) {
            int gm = m0 + ty + i * int(LY);
            for (int j = 0; j < RN; j++) {
                int gn = n0 + tx + j * int(LX);
                if (gm >= p.m || gn >= p.n)
                    continue;
                int at = c0 + gm * p.c_sm + gn;
                precise T v = alpha == T(1) ? acc[i * RN + j]
                                            : alpha * acc[i * RN + j];
                if (beta != T(0))
                    v += beta * c_.d[at];
                /* Epilogue (kernels.h): bias, then an activation. */
                if ((p.epilogue & 1) != 0)
                    v += bias_.d[p.off_bias + gm * p.bias_sm +
                                 gn * p.bias_sn];
                if ((p.epilogue >> 4) != 0)
                    v = kiln_unary_apply((p.epilogue >> 4) - 1, v);
                c_.d[at] = v;
            }
        }
    }
}
