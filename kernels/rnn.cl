/*
 * rnn.cl - one time step of a recurrent cell, forward (kiln_rnn_cell) and
 * backward (kiln_rnn_cell_backward), for RNN-tanh, RNN-relu, LSTM (with
 * optional TensorFlow-style peepholes) and GRU, chosen by p.mode.
 *
 * Semantics, parameter blocks and bindings: lib/queue/kernels_rnn.h; the
 * reference is lib/cpu/cpu_rnn.c.  Gate blocks in PyTorch order (LSTM
 * i f g o, GRU r z n), gate k of unit j at column k*H + j of a row.
 *
 * Layout: one work-item per (row n, unit j) of the [N, H] state, doing all
 * of that unit's gates; grid-stride over N*H, any grid.  Bindings a flag
 * marks unused are never read (the op layer binds any block there).
 * Tunables: the workgroup size only (LOCAL_X/Y/Z); C0..C3 unused.
 */

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

#if T_FLOAT
typedef struct {
    int mode, flags, n, h;
    int off_gx, off_gh;
    int off_h_prev, off_h_out;
    int off_c_prev, off_c_out;
    int off_tape;
    int off_bih, off_bhh, off_peep;
    uint pad[18];
} rnn_cell_params;

typedef struct {
    int mode, flags, n, h;
    int off_dy, dy_row;
    int off_dh_next, off_dh_prev, off_dc_next, off_dc_prev;
    int off_h_prev, off_h;
    int off_c_prev, off_c;
    int off_tape, off_peep;
    int off_dgx, off_dgh, off_dpeep;
    uint pad[13];
} rnn_cell_backward_params;

/* Never exp() of a large positive number. */
T rnn_sigmoid(T x)
{
    if (x >= (T)0)
        return (T)1 / ((T)1 + exp(-x));
    T e = exp(x);
    return e / ((T)1 + e);
}

int rnn_gates(int mode)
{
    return mode == MODE_LSTM ? 4 : mode == MODE_GRU ? 3 : 1;
}

/* Gate k pre-activation of (row, j): input side + b_ih, and with @hidden
 * also the hidden side + b_hh. */
T rnn_preact(__global const T *gx, __global const T *gh,
             __global const T *bih, __global const T *bhh,
             const rnn_cell_params *p, int row, int j, int k, int hidden)
{
    int width = rnn_gates(p->mode) * p->h, col = k * p->h + j;
    T v = gx[p->off_gx + row * width + col];
    if (p->flags & F_BIH)
        v += bih[p->off_bih + col];
    if (!hidden)
        return v;
    if (!(p->flags & F_ZERO_H))
        v += gh[p->off_gh + row * width + col];
    if (p->flags & F_BHH)
        v += bhh[p->off_bhh + col];
    return v;
}

KILN_KERNEL void kiln_rnn_cell(__global const T *gx, __global const T *gh,
                               __global T *hs, __global T *cs,
                               __global T *tape, __global const T *bih,
                               __global const T *bhh,
                               __global const T *peep,
                               const rnn_cell_params P)
{
    rnn_cell_params p = P;
    int H = p.h;
    int save = p.flags & F_TAPE, has_peep = p.flags & F_PEEP;
    for (uint i = kiln_global_index(); i < (uint)(p.n * H);
         i += kiln_global_count()) {
        int row = (int)i / H, j = (int)i % H, e = (int)i;
        int t = p.off_tape + row * 4 * H + j;
        T h;
        if (p.mode == MODE_TANH || p.mode == MODE_RELU) {
            T a = rnn_preact(gx, gh, bih, bhh, &p, row, j, 0, 1);
            h = p.mode == MODE_TANH ? tanh(a) : (a > (T)0 ? a : (T)0);
        } else if (p.mode == MODE_LSTM) {
            T cp = (p.flags & F_ZERO_C) ? (T)0 : cs[p.off_c_prev + e];
            T pi = has_peep ? peep[p.off_peep + j] : (T)0;
            T pf = has_peep ? peep[p.off_peep + H + j] : (T)0;
            T po = has_peep ? peep[p.off_peep + 2 * H + j] : (T)0;
            T ig = rnn_sigmoid(rnn_preact(gx, gh, bih, bhh, &p, row, j, 0, 1) +
                               pi * cp);
            T fg = rnn_sigmoid(rnn_preact(gx, gh, bih, bhh, &p, row, j, 1, 1) +
                               pf * cp);
            T gg = tanh(rnn_preact(gx, gh, bih, bhh, &p, row, j, 2, 1));
            T c = fg * cp + ig * gg;
            T og = rnn_sigmoid(rnn_preact(gx, gh, bih, bhh, &p, row, j, 3, 1) +
                               po * c);
            cs[p.off_c_out + e] = c;
            h = og * tanh(c);
            if (save) {
                tape[t] = ig;
                tape[t + H] = fg;
                tape[t + 2 * H] = gg;
                tape[t + 3 * H] = og;
            }
        } else {
            T r = rnn_sigmoid(rnn_preact(gx, gh, bih, bhh, &p, row, j, 0, 1));
            T z = rnn_sigmoid(rnn_preact(gx, gh, bih, bhh, &p, row, j, 1, 1));
            T ghn = (T)0;
            if (!(p.flags & F_ZERO_H))
                ghn += gh[p.off_gh + row * 3 * H + 2 * H + j];
            if (p.flags & F_BHH)
                ghn += bhh[p.off_bhh + 2 * H + j];
            T n = tanh(rnn_preact(gx, gh, bih, bhh, &p, row, j, 2, 0) +
                       r * ghn);
            T hp = (p.flags & F_ZERO_H) ? (T)0 : hs[p.off_h_prev + e];
            h = ((T)1 - z) * n + z * hp;
            if (save) {
                tape[t] = r;
                tape[t + H] = z;
                tape[t + 2 * H] = n;
                tape[t + 3 * H] = ghn;
            }
        }
        hs[p.off_h_out + e] = h;
    }
}

/* Writes gate k's input-side and hidden-side gradients of (row, j). */
void rnn_put_dg(__global T *dg, const rnn_cell_backward_params *p, int row,
                int j, int k, T dgx, T dgh)
{
    int col = row * rnn_gates(p->mode) * p->h + k * p->h + j;
    dg[p->off_dgx + col] = dgx;
    dg[p->off_dgh + col] = dgh;
}

KILN_KERNEL void kiln_rnn_cell_backward(__global const T *dy,
                                        __global T *d,
                                        __global const T *hs,
                                        __global const T *cs,
                                        __global const T *tape,
                                        __global const T *peep,
                                        __global T *dg,
                                        const rnn_cell_backward_params P)
{
    rnn_cell_backward_params p = P;
    int H = p.h;
    for (uint i = kiln_global_index(); i < (uint)(p.n * H);
         i += kiln_global_count()) {
        int row = (int)i / H, j = (int)i % H, e = (int)i;
        int t = p.off_tape + row * 4 * H + j;
        T dh = (T)0, direct = (T)0;
        if (p.flags & F_DY)
            dh += dy[p.off_dy + row * p.dy_row + j];
        if (!(p.flags & F_ZERO_DH))
            dh += d[p.off_dh_next + e];
        if (p.mode == MODE_LSTM) {
            int has_peep = p.flags & F_PEEP;
            T ig = tape[t], fg = tape[t + H], gg = tape[t + 2 * H];
            T og = tape[t + 3 * H];
            T cp = (p.flags & F_ZERO_C) ? (T)0 : cs[p.off_c_prev + e];
            T c = cs[p.off_c + e];
            T pi = has_peep ? peep[p.off_peep + j] : (T)0;
            T pf = has_peep ? peep[p.off_peep + H + j] : (T)0;
            T po = has_peep ? peep[p.off_peep + 2 * H + j] : (T)0;
            T dc = (p.flags & F_ZERO_DC) ? (T)0 : d[p.off_dc_next + e];
            T tc = tanh(c);
            T dop = dh * tc * og * ((T)1 - og);
            dc += dh * og * ((T)1 - tc * tc) + dop * po;
            T dip = dc * gg * ig * ((T)1 - ig);
            T dfp = dc * cp * fg * ((T)1 - fg);
            T dgp = dc * ig * ((T)1 - gg * gg);
            d[p.off_dc_prev + e] = dc * fg + dip * pi + dfp * pf;
            rnn_put_dg(dg, &p, row, j, 0, dip, dip);
            rnn_put_dg(dg, &p, row, j, 1, dfp, dfp);
            rnn_put_dg(dg, &p, row, j, 2, dgp, dgp);
            rnn_put_dg(dg, &p, row, j, 3, dop, dop);
            if (has_peep) {
                int q = p.off_dpeep + row * 3 * H + j;
                dg[q] = dip * cp;
                dg[q + H] = dfp * cp;
                dg[q + 2 * H] = dop * c;
            }
        } else if (p.mode == MODE_GRU) {
            T r = tape[t], z = tape[t + H], n = tape[t + 2 * H];
            T ghn = tape[t + 3 * H];
            T hp = (p.flags & F_ZERO_H) ? (T)0 : hs[p.off_h_prev + e];
            T dnp = dh * ((T)1 - z) * ((T)1 - n * n);
            T dzp = dh * (hp - n) * z * ((T)1 - z);
            T drp = dnp * ghn * r * ((T)1 - r);
            rnn_put_dg(dg, &p, row, j, 0, drp, drp);
            rnn_put_dg(dg, &p, row, j, 1, dzp, dzp);
            rnn_put_dg(dg, &p, row, j, 2, dnp, dnp * r);
            direct = dh * z;
        } else {
            T h = hs[p.off_h + e];
            T da = p.mode == MODE_TANH ? dh * ((T)1 - h * h)
                                       : (h > (T)0 ? dh : (T)0);
            rnn_put_dg(dg, &p, row, j, 0, da, da);
        }
        d[p.off_dh_prev + e] = direct;
    }
}
#endif /* T_FLOAT */
