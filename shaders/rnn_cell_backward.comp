/*
 * rnn_cell_backward.comp - one reverse time step of a recurrent cell
 * (KILN_K_RNN_CELL_BACKWARD), every mode of rnn_cell.comp.
 *
 * Semantics, flags and bindings: lib/queue/kernels_rnn.h (reference:
 * lib/cpu/cpu_rnn.c).  Writes the gate pre-activation gradients of the
 * input path (dgx) and the hidden path (dgh), dc_prev (LSTM), GRU's direct
 * dh_prev part (0 for the others) and the peephole products.
 * Binding 0: dy, 1: dh/dc carries, 2: h_prev/h, 3: c_prev/c, 4: tape,
 * 5: peepholes, 6: dgx/dgh/dpeep; unused ones are bound and never read.
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

layout(std430, set = 0, binding = 0) readonly buffer DY { T d[]; } dy;
layout(std430, set = 0, binding = 1) buffer D { T d[]; } dd;
layout(std430, set = 0, binding = 2) readonly buffer HS { T d[]; } hs;
layout(std430, set = 0, binding = 3) readonly buffer CS { T d[]; } cs;
layout(std430, set = 0, binding = 4) readonly buffer Tape { T d[]; } tape;
layout(std430, set = 0, binding = 5) readonly buffer Peep { T d[]; } peep;
layout(std430, set = 0, binding = 6) writeonly buffer DG { T d[]; } dg;

layout(push_constant, std430) uniform Params {
    int mode, flags, n, h;
    int off_dy, dy_row;
    int off_dh_next, off_dh_prev, off_dc_next, off_dc_prev;
    int off_h_prev, off_h;
    int off_c_prev, off_c;
    int off_tape, off_peep;
    int off_dgx, off_dgh, off_dpeep;
} p;

void put_dg(int row, int j, int k, T dgx, T dgh)
{
    int col = row * rnn_gates(p.mode) * p.h + k * p.h + j;
    dg.d[p.off_dgx + col] = dgx;
    dg.d[p.off_dgh + col] = dgh;
}

void lstm(int row, int j, int e, int t, T dh)
{
    int H = p.h;
    bool has_peep = (p.flags & F_PEEP) != 0;
    T ig = tape.d[t], fg = tape.d[t + H], gg = tape.d[t + 2 * H];
    T og = tape.d[t + 3 * H];
    T cp = (p.flags & F_ZERO_C) != 0 ? T(0) : cs.d[p.off_c_prev + e];
    T c = cs.d[p.off_c + e];
    T pi = has_peep ? peep.d[p.off_peep + j] : T(0);
    T pf = has_peep ? peep.d[p.off_peep + H + j] : T(0);
    T po = has_peep ? peep.d[p.off_peep + 2 * H + j] : T(0);
    T dc = (p.flags & F_ZERO_DC) != 0 ? T(0) : dd.d[p.off_dc_next + e];
    T tc = kiln_tanh(c);
    T dop = dh * tc * og * (T(1) - og);
    dc += dh * og * (T(1) - tc * tc) + dop * po;
    T dip = dc * gg * ig * (T(1) - ig);
    T dfp = dc * cp * fg * (T(1) - fg);
    T dgp = dc * ig * (T(1) - gg * gg);
    dd.d[p.off_dc_prev + e] = dc * fg + dip * pi + dfp * pf;
    put_dg(row, j, 0, dip, dip);
    put_dg(row, j, 1, dfp, dfp);
    put_dg(row, j, 2, dgp, dgp);
    put_dg(row, j, 3, dop, dop);
    if (has_peep) {
        int q = p.off_dpeep + row * 3 * H + j;
        dg.d[q] = dip * cp;
        dg.d[q + H] = dfp * cp;
        dg.d[q + 2 * H] = dop * c;
    }
}

T gru(int row, int j, int e, int t, T dh)
{
    int H = p.h;
    T r = tape.d[t], z = tape.d[t + H], n = tape.d[t + 2 * H];
    T ghn = tape.d[t + 3 * H];
    T hp = (p.flags & F_ZERO_H) != 0 ? T(0) : hs.d[p.off_h_prev + e];
    T dnp = dh * (T(1) - z) * (T(1) - n * n);
    T dzp = dh * (hp - n) * z * (T(1) - z);
    T drp = dnp * ghn * r * (T(1) - r);
    put_dg(row, j, 0, drp, drp);
    put_dg(row, j, 1, dzp, dzp);
    put_dg(row, j, 2, dnp, dnp * r);
    return dh * z;
}

void main()
{
    KILN_FOR_EACH(i, p.n * p.h) {
        int e = int(i), row = e / p.h, j = e % p.h;
        int t = p.off_tape + row * 4 * p.h + j;
        T dh = T(0), direct = T(0);
        if ((p.flags & F_DY) != 0)
            dh += dy.d[p.off_dy + row * p.dy_row + j];
        if ((p.flags & F_ZERO_DH) == 0)
            dh += dd.d[p.off_dh_next + e];
        if (p.mode == MODE_LSTM) {
            lstm(row, j, e, t, dh);
        } else if (p.mode == MODE_GRU) {
            direct = gru(row, j, e, t, dh);
        } else {
            T h = hs.d[p.off_h + e];
            T da = p.mode == MODE_TANH ? dh * (T(1) - h * h)
                                       : (h > T(0) ? dh : T(0));
            put_dg(row, j, 0, da, da);
        }
        dd.d[p.off_dh_prev + e] = direct;
    }
}
