/*
 * cpu_rnn.c - reference semantics of the recurrent-cell kernels
 * (parameter blocks and formulas in lib/queue/kernels_rnn.h).
 *
 * Each (row, unit) is computed in double from the stored values and
 * rounded once when stored, like the other reference kernels.  Bindings a
 * flag says are unused are never touched (they may be any block).
 */
#include <math.h>

#include "cpu/cpu_kernels_internal.h"
#include "queue/kernels_rnn.h"

static double sig(double x)
{
    if (x >= 0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* Reads element i of binding b, as a double. */
#define LD(b, i) kiln_cpu_load(base[b], d->dtype, (int64_t)(i))
#define ST(b, i, v) kiln_cpu_store(base[b], d->dtype, (int64_t)(i), (v))

/* Pre-activation of gate k for unit (row, j), both biases folded in;
 * GRU's n gate gets only the input side (its hidden side is scaled by r). */
static double preact(const kiln_dispatch *d, void *const *base, int row,
                     int j, int k, int hidden)
{
    const kiln_rnn_cell_params *p = (const void *)d->params;
    int g = p->mode == KILN_RNN_MODE_LSTM ? 4
          : p->mode == KILN_RNN_MODE_GRU ? 3 : 1;
    int col = k * p->h + j;
    double v = LD(0, p->off_gx + row * g * p->h + col);
    if (p->flags & KILN_RNN_F_BIH)
        v += LD(5, p->off_bih + col);
    if (!hidden)
        return v;
    if (!(p->flags & KILN_RNN_F_ZERO_H))
        v += LD(1, p->off_gh + row * g * p->h + col);
    if (p->flags & KILN_RNN_F_BHH)
        v += LD(6, p->off_bhh + col);
    return v;
}

/* GRU's hidden-side n value: gh_n + b_hh_n. */
static double gru_ghn(const kiln_dispatch *d, void *const *base, int row,
                      int j)
{
    const kiln_rnn_cell_params *p = (const void *)d->params;
    int col = 2 * p->h + j;
    double v = 0;
    if (!(p->flags & KILN_RNN_F_ZERO_H))
        v += LD(1, p->off_gh + row * 3 * p->h + col);
    if (p->flags & KILN_RNN_F_BHH)
        v += LD(6, p->off_bhh + col);
    return v;
}

static void cell_one(const kiln_dispatch *d, void *const *base, int row,
                     int j)
{
    const kiln_rnn_cell_params *p = (const void *)d->params;
    int H = p->h, e = row * H + j, tape = p->off_tape + row * 4 * H + j;
    int save = p->flags & KILN_RNN_F_TAPE;
    int peep = p->flags & KILN_RNN_F_PEEP;
    double h;
    if (p->mode == KILN_RNN_MODE_TANH || p->mode == KILN_RNN_MODE_RELU) {
        double a = preact(d, base, row, j, 0, 1);
        h = p->mode == KILN_RNN_MODE_TANH ? tanh(a) : (a > 0 ? a : 0);
    } else if (p->mode == KILN_RNN_MODE_LSTM) {
        double cp = (p->flags & KILN_RNN_F_ZERO_C) ? 0
                                                   : LD(3, p->off_c_prev + e);
        double pi = peep ? LD(7, p->off_peep + j) : 0;
        double pf = peep ? LD(7, p->off_peep + H + j) : 0;
        double po = peep ? LD(7, p->off_peep + 2 * H + j) : 0;
        double i = sig(preact(d, base, row, j, 0, 1) + pi * cp);
        double f = sig(preact(d, base, row, j, 1, 1) + pf * cp);
        double g = tanh(preact(d, base, row, j, 2, 1));
        /* c is rounded to T before use, as the devices store it. */
        ST(3, p->off_c_out + e, f * cp + i * g);
        double c = LD(3, p->off_c_out + e);
        double o = sig(preact(d, base, row, j, 3, 1) + po * c);
        h = o * tanh(c);
        if (save) {
            ST(4, tape, i);
            ST(4, tape + H, f);
            ST(4, tape + 2 * H, g);
            ST(4, tape + 3 * H, o);
        }
    } else {
        double r = sig(preact(d, base, row, j, 0, 1));
        double z = sig(preact(d, base, row, j, 1, 1));
        double ghn = gru_ghn(d, base, row, j);
        double n = tanh(preact(d, base, row, j, 2, 0) + r * ghn);
        double hp = (p->flags & KILN_RNN_F_ZERO_H) ? 0
                                                   : LD(2, p->off_h_prev + e);
        h = (1 - z) * n + z * hp;
        if (save) {
            ST(4, tape, r);
            ST(4, tape + H, z);
            ST(4, tape + 2 * H, n);
            ST(4, tape + 3 * H, ghn);
        }
    }
    ST(2, p->off_h_out + e, h);
}

void kiln_cpu_rnn_cell(const kiln_dispatch *d, void *const *base)
{
    const kiln_rnn_cell_params *p = (const void *)d->params;
    for (int row = 0; row < p->n; row++)
        for (int j = 0; j < p->h; j++)
            cell_one(d, base, row, j);
}

/* ---- backward ----------------------------------------------------------- */

typedef struct bwd_io {
    const kiln_dispatch *d;
    void *const *base;
    const kiln_rnn_cell_backward_params *p;
    int row, j, e, G;
} bwd_io;

static void put_dg(const bwd_io *b, int k, double dgx, double dgh)
{
    const kiln_dispatch *d = b->d;
    void *const *base = b->base;
    int col = b->row * b->G * b->p->h + k * b->p->h + b->j;
    ST(6, b->p->off_dgx + col, dgx);
    ST(6, b->p->off_dgh + col, dgh);
}

static void lstm_backward(const bwd_io *b, double dh, double *dh_direct)
{
    const kiln_dispatch *d = b->d;
    void *const *base = b->base;
    const kiln_rnn_cell_backward_params *p = b->p;
    int H = p->h, e = b->e, t = p->off_tape + b->row * 4 * H + b->j;
    int peep = p->flags & KILN_RNN_F_PEEP;
    double i = LD(4, t), f = LD(4, t + H), g = LD(4, t + 2 * H);
    double o = LD(4, t + 3 * H);
    double cp = (p->flags & KILN_RNN_F_ZERO_C) ? 0 : LD(3, p->off_c_prev + e);
    double c = LD(3, p->off_c + e);
    double pi = peep ? LD(5, p->off_peep + b->j) : 0;
    double pf = peep ? LD(5, p->off_peep + H + b->j) : 0;
    double po = peep ? LD(5, p->off_peep + 2 * H + b->j) : 0;
    double dc = (p->flags & KILN_RNN_F_ZERO_DC) ? 0
                                                : LD(1, p->off_dc_next + e);
    double tc = tanh(c);
    double dop = dh * tc * o * (1 - o);
    dc += dh * o * (1 - tc * tc) + dop * po;
    double dip = dc * g * i * (1 - i);
    double dfp = dc * cp * f * (1 - f);
    double dgp = dc * i * (1 - g * g);
    ST(1, p->off_dc_prev + e, dc * f + dip * pi + dfp * pf);
    put_dg(b, 0, dip, dip);
    put_dg(b, 1, dfp, dfp);
    put_dg(b, 2, dgp, dgp);
    put_dg(b, 3, dop, dop);
    if (peep) {
        int q = p->off_dpeep + b->row * 3 * H + b->j;
        ST(6, q, dip * cp);
        ST(6, q + H, dfp * cp);
        ST(6, q + 2 * H, dop * c);
    }
    *dh_direct = 0;
}

static void gru_backward(const bwd_io *b, double dh, double *dh_direct)
{
    const kiln_dispatch *d = b->d;
    void *const *base = b->base;
    const kiln_rnn_cell_backward_params *p = b->p;
    int H = p->h, t = p->off_tape + b->row * 4 * H + b->j;
    double r = LD(4, t), z = LD(4, t + H), n = LD(4, t + 2 * H);
    double ghn = LD(4, t + 3 * H);
    double hp = (p->flags & KILN_RNN_F_ZERO_H) ? 0
                                               : LD(2, p->off_h_prev + b->e);
    double dnp = dh * (1 - z) * (1 - n * n);
    double dzp = dh * (hp - n) * z * (1 - z);
    double drp = dnp * ghn * r * (1 - r);
    put_dg(b, 0, drp, drp);
    put_dg(b, 1, dzp, dzp);
    put_dg(b, 2, dnp, dnp * r);
    *dh_direct = dh * z;
}

static void backward_one(const kiln_dispatch *d, void *const *base, int row,
                         int j)
{
    const kiln_rnn_cell_backward_params *p = (const void *)d->params;
    bwd_io b = {d, base, p, row, j, row * p->h + j,
                p->mode == KILN_RNN_MODE_LSTM ? 4
                : p->mode == KILN_RNN_MODE_GRU ? 3 : 1};
    double dh = 0, direct = 0;
    if (p->flags & KILN_RNN_F_DY)
        dh += LD(0, p->off_dy + row * p->dy_row + j);
    if (!(p->flags & KILN_RNN_F_ZERO_DH))
        dh += LD(1, p->off_dh_next + b.e);
    if (p->mode == KILN_RNN_MODE_LSTM) {
        lstm_backward(&b, dh, &direct);
    } else if (p->mode == KILN_RNN_MODE_GRU) {
        gru_backward(&b, dh, &direct);
    } else {
        double h = LD(2, p->off_h + b.e);
        double da = p->mode == KILN_RNN_MODE_TANH ? dh * (1 - h * h)
                                                  : (h > 0 ? dh : 0);
        put_dg(&b, 0, da, da);
    }
    ST(1, p->off_dh_prev + b.e, direct);
}

void kiln_cpu_rnn_cell_backward(const kiln_dispatch *d, void *const *base)
{
    const kiln_rnn_cell_backward_params *p = (const void *)d->params;
    for (int row = 0; row < p->n; row++)
        for (int j = 0; j < p->h; j++)
            backward_one(d, base, row, j);
}
