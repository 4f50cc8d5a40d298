/*
 * kernels_rnn.h - parameter blocks of the recurrent-cell kernels
 * (KILN_K_RNN_CELL, KILN_K_RNN_CELL_BACKWARD); conventions of kernels.h.
 *
 * One kernel serves every cell kind, chosen by `mode`.  A work-item owns
 * one (row n, unit j) of the [N, H] state and does all of that unit's gate
 * math, so no gate value crosses work-items.  Every [N, X] operand is dense
 * with row stride X (the op layer passes contiguous rows), except dy, whose
 * row stride is a parameter (batch-first gradients are read in place).
 * Gate blocks follow PyTorch: RNN 1 block, LSTM i f g o, GRU r z n; gate k
 * of unit j is column k*H + j.
 *
 * Forward, one step:  pre_k = gx[k] (+ b_ih[k]) + gh[k] (+ b_hh[k])
 *   TANH/RELU:  h = act(pre)
 *   LSTM:       i = sig(pre_i + p_i c_prev), f = sig(pre_f + p_f c_prev),
 *               g = tanh(pre_g), c = f c_prev + i g,
 *               o = sig(pre_o + p_o c), h = o tanh(c)
 *               (peepholes p = w_peep [3, H], TensorFlow's form)
 *   GRU:        r = sig(gx_r + gh_r), z = sig(gx_z + gh_z) (biases folded),
 *               ghn = gh_n + b_hh_n, n = tanh(gx_n + b_ih_n + r ghn),
 *               h = (1 - z) n + z h_prev
 * The tape row ([N, 4H]) keeps i f g o (LSTM) or r z n ghn (GRU); RNN
 * needs none (act' comes from h).
 */
#ifndef KILN_KERNELS_RNN_H
#define KILN_KERNELS_RNN_H

#include <stdint.h>

enum kiln_rnn_mode {
    KILN_RNN_MODE_TANH = 0,   /* same values as kiln_rnn_kind */
    KILN_RNN_MODE_RELU,
    KILN_RNN_MODE_LSTM,
    KILN_RNN_MODE_GRU,
};

/* Flag bits of both blocks.  A ZERO_* flag means "that operand is zero":
 * the kernel does not read it at all (it may be uninitialised memory). */
enum kiln_rnn_flag {
    KILN_RNN_F_BIH = 1,       /* fwd: add b_ih (binding 5)              */
    KILN_RNN_F_BHH = 2,       /* fwd: add b_hh (binding 6)              */
    KILN_RNN_F_PEEP = 4,      /* LSTM peepholes (fwd 7, bwd 5)           */
    KILN_RNN_F_TAPE = 8,      /* fwd: write the tape row                */
    KILN_RNN_F_ZERO_H = 16,   /* h_prev = 0; fwd: gh = 0 too            */
    KILN_RNN_F_ZERO_C = 32,   /* c_prev = 0                             */
    KILN_RNN_F_DY = 64,       /* bwd: add dy (else no output gradient)   */
    KILN_RNN_F_ZERO_DH = 128, /* bwd: incoming dh carry is 0            */
    KILN_RNN_F_ZERO_DC = 256, /* bwd: incoming dc carry is 0            */
};

/* KILN_K_RNN_CELL: one time step.
 * Binding 0: gx [N, G*H] (read), 1: gh [N, G*H] (read),
 * 2: h_prev and h_out [N, H] (h_out written), 3: c_prev and c_out (LSTM),
 * 4: tape [N, 4H] (written with F_TAPE), 5: b_ih [G*H], 6: b_hh [G*H],
 * 7: peep [3, H].  Unused bindings are bound to any block and not read.
 * Grid-stride over n*h work-items. */
typedef struct kiln_rnn_cell_params {
    int32_t mode, flags, n, h;
    int32_t off_gx, off_gh;
    int32_t off_h_prev, off_h_out;
    int32_t off_c_prev, off_c_out;
    int32_t off_tape;
    int32_t off_bih, off_bhh, off_peep;
} kiln_rnn_cell_params;

/* KILN_K_RNN_CELL_BACKWARD: one time step, reverse mode.
 *   dh = (F_DY ? dy : 0) + (F_ZERO_DH ? 0 : dh_next)
 *   dc = (F_ZERO_DC ? 0 : dc_next)           (LSTM)
 * writes the gate pre-activation gradients of the input path (dgx) and of
 * the hidden path (dgh; differs from dgx only for GRU's n gate, which is
 * scaled by r), dc_prev (LSTM), the part of dh_prev that does not go
 * through w_hh (GRU: dh z; others 0; the op layer adds dgh @ w_hh), and
 * per-element peephole products dpeep [N, 3H] = (di c_prev, df c_prev,
 * do c) that the op layer sums over rows.
 * Binding 0: dy (rows dy_row apart), 1: dh_next, dh_prev, dc_next,
 * dc_prev [N, H] each, 2: h_prev, h [N, H], 3: c_prev, c (LSTM),
 * 4: tape [N, 4H], 5: peep [3, H], 6: dgx, dgh [N, G*H], dpeep [N, 3H].
 * Grid-stride over n*h work-items. */
typedef struct kiln_rnn_cell_backward_params {
    int32_t mode, flags, n, h;
    int32_t off_dy, dy_row;
    int32_t off_dh_next, off_dh_prev, off_dc_next, off_dc_prev;
    int32_t off_h_prev, off_h;
    int32_t off_c_prev, off_c;
    int32_t off_tape, off_peep;
    int32_t off_dgx, off_dgh, off_dpeep;
} kiln_rnn_cell_backward_params;

#endif /* KILN_KERNELS_RNN_H */
