/*
 * kernels.h - the parameter block of every kernel, and its op codes.
 *
 * This file is the contract between the backend-neutral op layer (lib/ops),
 * which fills these blocks, and the three implementations of each kernel:
 * lib/cpu/cpu_kernels*.c, kernels/<family>.cl and shaders/<family>.comp.
 * The .cl and .comp files declare the same layouts; tests/test_ops.c checks
 * that all three agree.
 *
 * Shared rules:
 *   - every field is 32 bits; a block is at most 128 bytes (32 words);
 *   - strided kernels see KILN_KDIMS dimensions, outermost first, unused
 *     leading dimensions have shape 1 (and stride 0);
 *   - offsets and strides are in elements of the bound block's dtype,
 *     counted from the start of the block;
 *   - a scalar of dtype T is stored in T's own bits: f32 and i32 in the low
 *     word, f64 in (lo, hi) - so no f32 kernel needs double support.
 */
#ifndef KILN_KERNELS_H
#define KILN_KERNELS_H

#include <stdint.h>

#define KILN_KDIMS 6

/* KILN_K_FILL: out[strided] = value.  Binding 0: out. */
typedef struct kiln_fill_params {
    int32_t n;
    int32_t off_out;
    int32_t shape[KILN_KDIMS];
    int32_t stride_out[KILN_KDIMS];
    uint32_t value_lo, value_hi;
} kiln_fill_params;

/* KILN_K_CONVERT: out[strided] = (U) in[strided].  Binding 0: in (T),
 * binding 1: out (U).  Float to int: NaN -> 0, saturate, truncate. */
typedef struct kiln_convert_params {
    int32_t n;
    int32_t off_in;
    int32_t off_out;
    int32_t shape[KILN_KDIMS];
    int32_t stride_in[KILN_KDIMS];
    int32_t stride_out[KILN_KDIMS];
} kiln_convert_params;

/* KILN_K_UNARY: out[i] = op(in[strided]), out contiguous.
 * Binding 0: in, binding 1: out. */
enum kiln_unary_op {
    KILN_UNARY_NEG = 0,
    KILN_UNARY_ABS,
    KILN_UNARY_SQUARE,
    KILN_UNARY_RELU,      /* x > 0 ? x : 0                                  */
    KILN_UNARY_EXP,       /* float only from here on                        */
    KILN_UNARY_LOG,
    KILN_UNARY_SQRT,
    KILN_UNARY_SIGMOID,   /* 1 / (1 + exp(-x)), stable for large |x|        */
    KILN_UNARY_TANH,
    KILN_UNARY_COUNT
};
#define KILN_UNARY_FIRST_FLOAT_ONLY KILN_UNARY_EXP

typedef struct kiln_unary_params {
    int32_t n;
    int32_t op;
    int32_t off_in;
    int32_t off_out;
    int32_t shape[KILN_KDIMS];
    int32_t stride_in[KILN_KDIMS];
} kiln_unary_params;

/* KILN_K_BINARY: out[i] = op(a[strided], b[strided]), out contiguous.
 * Binding 0: a, 1: b, 2: out.  Comparisons give 1 or 0 in T.
 * Integer DIV: truncates, x/0 = 0, INT_MIN/-1 = INT_MIN.
 * MIN/MAX: NaN if either operand is NaN.  POW: float only. */
enum kiln_binary_op {
    KILN_BINARY_ADD = 0,
    KILN_BINARY_SUB,
    KILN_BINARY_MUL,
    KILN_BINARY_DIV,
    KILN_BINARY_MIN,
    KILN_BINARY_MAX,
    KILN_BINARY_POW,
    KILN_BINARY_EQ,
    KILN_BINARY_NE,
    KILN_BINARY_LT,
    KILN_BINARY_LE,
    KILN_BINARY_GT,
    KILN_BINARY_GE,
    KILN_BINARY_COUNT
};

typedef struct kiln_binary_params {
    int32_t n;
    int32_t op;
    int32_t off_a;
    int32_t off_b;
    int32_t off_out;
    int32_t shape[KILN_KDIMS];
    int32_t stride_a[KILN_KDIMS];
    int32_t stride_b[KILN_KDIMS];
} kiln_binary_params;

/* KILN_K_SELECT: out[i] = c[strided] != 0 ? a[strided] : b[strided].
 * Binding 0: c, 1: a, 2: b, 3: out. */
typedef struct kiln_select_params {
    int32_t n;
    int32_t off_c;
    int32_t off_a;
    int32_t off_b;
    int32_t off_out;
    int32_t shape[KILN_KDIMS];
    int32_t stride_c[KILN_KDIMS];
    int32_t stride_a[KILN_KDIMS];
    int32_t stride_b[KILN_KDIMS];
} kiln_select_params;

/* KILN_K_REDUCE and KILN_K_ARGREDUCE.
 * The input is seen as outer dims (one output element each, outputs
 * contiguous in row-major order of the outer dims) times reduced dims.
 * For output o (0 <= o < nout) the kernel combines the nred input elements
 *   in[off_in + outer_offset(o) + reduced_offset(r)],  0 <= r < nred,
 * where *_offset() decompose the index over the shape/stride arrays.
 * REDUCE: op SUM/MAX/MIN over T, result times `scale` (T bits) for SUM
 * (the mean), written to out[off_out + o].  With split S > 1, each output's
 * r range is cut into S slices of ceil(nred / S) (the last shorter), each
 * reduced by its own workgroup into out[off_out + o * S + s]: partial
 * results that a second KILN_K_REDUCE combines (lib/ops/reduce.c), so
 * that a few long reductions (a loss's mean) fill the device.
 * ARGREDUCE: op ARGMAX/ARGMIN, writes r of the first extreme element as
 * i32; NaN counts as the extreme (as NumPy).
 * Binding 0: in (T), binding 1: out (T, or i32 for ARGREDUCE).
 * Workgroup: one group reduces one output at a time (local[0] threads,
 * a power of two), groups loop over outputs grid-stride. */
enum kiln_reduce_kop {
    KILN_KREDUCE_SUM = 0,
    KILN_KREDUCE_MAX,
    KILN_KREDUCE_MIN,
};
enum kiln_argreduce_kop {
    KILN_KARG_MAX = 0,
    KILN_KARG_MIN,
};

typedef struct kiln_reduce_params {
    int32_t nout;
    int32_t nred;
    int32_t op;
    int32_t off_in;
    int32_t off_out;
    int32_t outer_shape[KILN_KDIMS];
    int32_t outer_stride[KILN_KDIMS];
    int32_t red_shape[KILN_KDIMS];
    int32_t red_stride[KILN_KDIMS];
    uint32_t scale_lo, scale_hi;
    int32_t split;               /* REDUCE: slices per output (>= 1)      */
} kiln_reduce_params;

/* KILN_K_GEMM: for each batch index z < batch,
 *   C[z](m, n) = alpha * sum_k A[z](m, k) B[z](k, n) + beta * C[z](m, n)
 * with A[z](m, k) = a[off_a + z*a_sb + m*a_sm + k*a_sk], likewise B with
 * (b_sb, b_sk, b_sn) and C with (c_sb, c_sm, unit column stride).  Transposes
 * and broadcast batches (stride 0) are just strides.  When beta is 0, C is
 * not read (so it may hold NaN).  Binding 0: A, 1: B, 2: C.
 * Tuning: local = (LX, LY); consts[0] = RM rows and consts[1] = RN columns
 * per thread, consts[2] = TK (k-tile); a group computes an (LY*RM) x (LX*RN)
 * tile of C; groups = (tiles along N, tiles along M, batches), each loops
 * grid-stride over batches.
 * Epilogue (bias + activation fusion), applied to each C value after
 * alpha/beta, in T: if (epilogue & KILN_GEMM_BIAS), + bias[off_bias +
 * m * bias_sm + n * bias_sn] (binding 3; without it binding 3 repeats A,
 * untouched) - a dense layer's bias is per column (bias_sm = 0), a
 * convolution's per row, i.e. per output channel (bias_sn = 0); the same
 * for every batch index z.  Then, if (epilogue >> 4) is nonzero, the unary
 * op (epilogue >> 4) - 1 (kiln_unary_op codes: RELU, SIGMOID, TANH).
 * alpha == 1 skips the multiply, so bias + activation round exactly as the
 * separate kernels. */
#define KILN_GEMM_BIAS 1
#define KILN_GEMM_ACT_SHIFT 4
typedef struct kiln_gemm_params {
    int32_t m, n, k, batch;
    int32_t off_a, off_b, off_c;
    int32_t a_sm, a_sk, a_sb;
    int32_t b_sk, b_sn, b_sb;
    int32_t c_sm, c_sb;
    uint32_t alpha_lo, alpha_hi;
    uint32_t beta_lo, beta_hi;
    int32_t epilogue, off_bias, bias_sm, bias_sn;
} kiln_gemm_params;
/* gemm.cl declares the same block, padded to the 128 bytes
 * (KILN_PARAM_BYTES) the host passes. */
_Static_assert(sizeof(kiln_gemm_params) <= 128,
               "kiln_gemm_params must fit the 128-byte parameter block");

#endif /* KILN_KERNELS_H */
