/*
 * rnn_cell.comp - one forward time step of a recurrent cell
 * (KILN_K_RNN_CELL): RNN-tanh, RNN-relu, LSTM (optional TensorFlow-style
 * peepholes) or GRU, chosen by p.mode.
 *
 * Semantics, flags and bindings: lib/queue/kernels_rnn.h (reference:
 * lib/cpu/cpu_rnn.c).  Gate k of unit j is column k*H + j (PyTorch order:
 * LSTM i f g o, GRU r z n).  Binding 0: gx, 1: gh, 2: h_prev/h_out,
 * 3: c_prev/c_out, 4: tape, 5: b_ih, 6: b_hh, 7: peepholes; bindings a
 * flag marks unused are bound to some block and never read.
 * Layout: one invocation per (row, unit) of [N, H], grid-stride in x.
 * Tunables: workgroup size only.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

/* Flag bits and modes of lib/queue/kernels_rnn.h. */
#define F_BIH 1
#define F_BHH 2
#define F_PEEP 4
#define F_TAPE 8
#define F_ZERO_H 16
#define F_ZERO_C 32
#define F_DY 64
#define F_ZERO_DH 128
#define F_ZERO_DC 256

#define MODE_TANH 0
#define MODE_RELU 1
#define MODE_LSTM 2
#define MODE_GRU 3

int rnn_gates(int mode)
{
    return mode == MODE_LSTM ? 4 : mode == MODE_GRU ? 3 : 1;
}

layout(std430, set = 0, binding = 0) readonly buffer GX { T d[]; } gx;
layout(std430, set = 0, binding = 1) readonly buffer GH { T d[]; } gh;
layout(std430, set = 0, binding = 2) buffer HS { T d[]; } hs;
layout(std430, set = 0, binding = 3) buffer CS { T d[]; } cs;
layout(std430, set = 0, binding = 4) writeonly buffer Tape { T d[]; } tape;
layout(std430, set = 0, binding = 5) readonly buffer BIH { T d[]; } bih;
layout(std430, set = 0, binding = 6) readonly buffer BHH { T d[]; } bhh;
layout(std430, set = 0, binding = 7) readonly buffer Peep { T d[]; } peep;

layout(push_constant, std430) uniform Params {
    int mode, flags, n, h;
    int off_gx, off_gh;
    int off_h_prev, off_h_out;
    int off_c_prev, off_c_out;
    int off_tape;
    int off_bih, off_bhh, off_peep;
} p;

/* Gate k pre-activation: input side + b_ih, with @hidden also the hidden
 * side + b_hh. */
T preact(int row, int j, int k, bool hidden)
{
    int width = rnn_gates(p.mode) * p.h, col = k * p.h + j;
    T v = gx.d[p.off_gx + row * width + col];
    if ((p.flags & F_BIH) != 0)
        v += bih.d[p.off_bih + col];
    if (!hidden)
        return v;
    if ((p.flags & F_ZERO_H) == 0)
        v += gh.d[p.off_gh + row * width + col];
    if ((p.flags & F_BHH) != 0)
        v += bhh.d[p.off_bhh + col];
    return v;
}

T lstm(int row, int j, int e, int t)
{
    int H = p.h;
    bool has_peep = (p.flags & F_PEEP) != 0;
    T cp = (p.flags & F_ZERO_C) != 0 ? T(0) : cs.d[p.off_c_prev + e];
    T pi = has_peep ? peep.d[p.off_peep + j] : T(0);
    T pf = has_peep ? peep.d[p.off_peep + H + j] : T(0);
    T po = has_peep ? peep.d[p.off_peep + 2 * H + j] : T(0);
    T ig = kiln_sigmoid(preact(row, j, 0, true) + pi * cp);
    T fg = kiln_sigmoid(preact(row, j, 1, true) + pf * cp);
    T gg = kiln_tanh(preact(row, j, 2, true));
    T c = fg * cp + ig * gg;
    T og = kiln_sigmoid(preact(row, j, 3, true) + po * c);
    cs.d[p.off_c_out + e] = c;
    if ((p.flags & F_TAPE) != 0) {
        tape.d[t] = ig;
        tape.d[t + H] = fg;
        tape.d[t + 2 * H] = gg;
        tape.d[t + 3 * H] = og;
    }
    return og * kiln_tanh(c);
}

T gru(int row, int j, int e, int t)
{
    int H = p.h;
    T r = kiln_sigmoid(preact(row, j, 0, true));
    T z = kiln_sigmoid(preact(row, j, 1, true));
    T ghn = T(0);
    if ((p.flags & F_ZERO_H) == 0)
        ghn += gh.d[p.off_gh + row * 3 * H + 2 * H + j];
    if ((p.flags & F_BHH) != 0)
        ghn += bhh.d[p.off_bhh + 2 * H + j];
    T n = kiln_tanh(preact(row, j, 2, false) + r * ghn);
    T hp = (p.flags & F_ZERO_H) != 0 ? T(0) : hs.d[p.off_h_prev + e];
    if ((p.flags & F_TAPE) != 0) {
        tape.d[t] = r;
        tape.d[t + H] = z;
        tape.d[t + 2 * H] = n;
        tape.d[t + 3 * H] = ghn;
    }
    return (T(1) - z) * n + z * hp;
}

void main()
{
    KILN_FOR_EACH(i, p.n * p.h) {
        int e = int(i), row = e / p.h, j = e % p.h;
        int t = p.off_tape + row * 4 * p.h + j;
        T h;
        if (p.mode == MODE_LSTM) {
            h = lstm(row, j, e, t);
        } else if (p.mode == MODE_GRU) {
            h = gru(row, j, e, t);
        } else {
            T a = preact(row, j, 0, true);
            h = p.mode == MODE_TANH ? kiln_tanh(a) : (a > T(0) ? a : T(0));
        }
        hs.d[p.off_h_out + e] = h;
    }
}
