/*
 * gemm.cl - batched C = alpha * A B + beta * C with arbitrary strides.
 *
 * Semantics of kiln_cpu_gemm (lib/cpu/cpu_kernels_reduce.c):
 *   A[z](m, k) = a[off_a + z*a_sb + m*a_sm + k*a_sk], B likewise with
 *   (b_sb, b_sk, b_sn), C[z](m, n) = c[off_c + z*c_sb + m*c_sm + n].
 * Transposes and broadcast batches are strides.  beta == 0: C is not read.
 *
 * Layout: a workgroup of LOCAL_X x LOCAL_Y work-items computes a
 * BM x BN tile of C, BM = LOCAL_Y * RM rows, BN = LOCAL_X * RN columns.
 * Work-item (tx, ty) owns rows ty + i*LOCAL_Y and columns tx + j*LOCAL_X
 * (i < RM, j < RN): neighbours write neighbouring columns.  K is walked in
 * slices of TK; each slice of A (BM x TK) and B (TK x BN) is staged in
 * __local memory, zero-padded past the matrix edges, so any M, N, K works.
 * Groups loop grid-stride: dim 0 over column tiles, dim 1 over row tiles,
 * dim 2 over the batch.  Accumulation in T.
 * Epilogue (kernels.h): + bias[m * bias_sm + n * bias_sn] (per column for
 * a dense layer, per row for a convolution) and an activation, in
 * registers.
 * Tunables: LOCAL_X, LOCAL_Y (LOCAL_Z = 1); C0 = RM, C1 = RN, C2 = TK.
 * __local use: TK * (BM + BN) elements of T.
 */

typedef struct {
    int m, n, k, batch;
    int off_a, off_b, off_c;
    int a_sm, a_sk, a_sb;
    int b_sk, b_sn, b_sb;
    int c_sm, c_sb;
    uint alpha_lo, alpha_hi;
    uint beta_lo, beta_hi;
    int epilogue, off_bias, bias_sm, bias_sn;
    uint pad[9]; /* to the 128 bytes the host passes */
} gemm_params;

#if !defined(C0) || C0 < 1
#define RM 1
#else
#define RM C0
#endif
#if !defined(C1) || C1 < 1
#define RN 1
#else
#define RN C1
#endif
#if !defined(C2) || C2 < 1
#define TK 8
#else
#define TK C2
#endif
#define BM (LOCAL_Y * RM)
#define BN (LOCAL_X * RN)

/* Stages A[row0.., k0..] and B[k0.., col0..] of batch bases a0, b0. */
void gemm_load_tiles(__global const T *A, __global const T *B,
                     __local T (*As)[BM], __local T (*Bs)[BN],
                     const gemm_params *p, int a0, int b0, int row0,
                     int col0, int k0, int tid)
{
    for (int e = tid; e < BM * TK; e += NTHREADS) {
        int r = e / TK, kk = e % TK;
        int gm = row0 + r, gk = k0 + kk;
        As[kk][r] = gm < p->m && gk < p->k
                        ? A[a0 + gm * p->a_sm + gk * p->a_sk] : (T)0;
    }
    for (int e = tid; e < TK * BN; e += NTHREADS) {
        int kk = e / BN, c = e % BN;
        int gk = k0 + kk, gn = col0 + c;
        Bs[kk][c] = gk < p->k && gn < p->n
                        ? B[b0 + gk * p->b_sk + gn * p->b_sn] : (T)0;
    }
}

KILN_KERNEL void kiln_gemm(__global const T *A, __global const T *B,
                           __global T *C, __global const T *bias,
                           const gemm_params P)
{
    __local T As[TK][BM];
    __local T Bs[TK][BN];
    gemm_params p = P;
    T alpha = T_FROM_BITS(p.alpha_lo, p.alpha_hi);
    T beta = T_FROM_BITS(p.beta_lo, p.beta_hi);
    int tx = (int)get_local_id(0), ty = (int)get_local_id(1);
    int tid = ty * LOCAL_X + tx;
    int tiles_m = (p.m + BM - 1) / BM, tiles_n = (p.n + BN - 1) / BN;

    for (int z = (int)get_group_id(2); z < p.batch;
         z += (int)get_num_groups(2))
    for (int tm = (int)get_group_id(1); tm < tiles_m;
         tm += (int)get_num_groups(1))
    for (int tn = (int)get_group_id(0); tn < tiles_n;
         tn += (int)get_num_groups(0)) {
        int a0 = p.off_a + z * p.a_sb, b0 = p.off_b + z * p.b_sb;
        int c0 = p.off_c + z * p.c_sb;
        int row0 = tm * BM, col0 = tn * BN;
        T acc[RM][RN];
        for (int i = 0; i < RM; i++)
            for (int j = 0; j < RN; j++)
                acc[i][j] = (T)0;

        for (int k0 = 0; k0 < p.k; k0 += TK) {
            gemm_load_tiles(A, B, As, Bs, &p, a0, b0, row0, col0, k0, tid);
            LOCAL_BARRIER();
            for (int kk = 0; kk < TK; kk++) {
                T av[RM], bv[RN];
                for (int i = 0; i < RM; i++)
                    av[i] = As[kk][ty + i * LOCAL_Y];
                for (int j = 0; j < RN; j++)
                    bv[j] = Bs[kk][tx + j * LOCAL_X];
                for (int i = 0; i < RM; i++)
                    for (int j = 0; j < RN; j++)
                        acc[i][j] += av[i] * bv[j];
            }
            /* The next slice overwrites the tiles. */
            LOCAL_BARRIER();
        }

        for (int i = 0; i < RM; i++) {
            int gm = row0 + ty + i * LOCAL_Y;
            for (int j = 0; j < RN; j++) {
                int gn = col0 + tx + j * LOCAL_X;
                if (gm >= p.m || gn >= p.n)
                    continue;
                int at = c0 + gm * p.c_sm + gn;
                T c = alpha == (T)1 ? acc[i][j] : alpha * acc[i][j];
                if (beta != (T)0)
                    c += beta * C[at];
                if (p.epilogue & 1)
                    c += bias[p.off_bias + gm * p.bias_sm +
                              gn * p.bias_sn];
                if (p.epilogue >> 4)
                    c = kiln_unary_op((p.epilogue >> 4) - 1, c);
                C[at] = c;
            }
        }
    }
}
