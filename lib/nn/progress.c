/*
 * progress.c - what kiln_model_fit prints while it trains.
 *
 * On a terminal: one line redrawn in place with \r, at most ten times a
 * second (each redraw reads the running loss from the device, the only
 * host sync inside an epoch), showing epoch, step/steps, a bar, loss,
 * accuracy, ETA and samples/s; the epoch's final numbers (validation
 * included) are written on it before it moves to the next line.  Not on a
 * terminal (a log file, a pipe, a CI job): one plain line per epoch, so
 * logs are not filled with carriage returns.
 */
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nn/model.h"

#define REDRAW_SECONDS 0.1
#define BAR_WIDTH 24

double model__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void model__progress_begin(model_progress *p, kiln_progress mode, FILE *out,
                           int64_t epochs, int64_t steps_per_epoch)
{
    memset(p, 0, sizeof *p);
    p->out = out ? out : stdout;
    if (mode == KILN_PROGRESS_AUTO)
        mode = isatty(fileno(p->out)) ? KILN_PROGRESS_BAR
                                      : KILN_PROGRESS_LINES;
    p->mode = mode;
    p->epochs = epochs;
    p->steps = steps_per_epoch;
}

void model__progress_epoch_start(model_progress *p, int64_t first_step)
{
    p->first_step = first_step;
    p->epoch_start = model__now();
    p->last_draw = p->epoch_start;
}

int model__progress_due(const model_progress *p)
{
    return p->mode == KILN_PROGRESS_BAR &&
           model__now() - p->last_draw >= REDRAW_SECONDS;
}

/* "loss 0.1234 - accuracy 0.9876" (accuracy left out when NaN). */
static void print_numbers(FILE *out, const char *prefix, double loss,
                          double accuracy)
{
    fprintf(out, " - %sloss %.4f", prefix, loss);
    if (!isnan(accuracy))
        fprintf(out, " - %saccuracy %.4f", prefix, accuracy);
}

/* The bar; @l (the epoch's final numbers, validation included) or NULL
 * while the epoch runs. */
static void draw_bar(model_progress *p, int64_t epoch, int64_t step,
                     double loss, double accuracy, int64_t samples,
                     const kiln_epoch_logs *l)
{
    double elapsed = model__now() - p->epoch_start;
    int filled = p->steps ? (int)(BAR_WIDTH * step / p->steps) : BAR_WIDTH;
    char bar[BAR_WIDTH + 1];
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < filled ? '=' : i == filled ? '>' : '.';
    bar[BAR_WIDTH] = 0;
    fprintf(p->out, "\rEpoch %lld/%lld %lld/%lld [%s]", (long long)epoch + 1,
            (long long)p->epochs, (long long)step, (long long)p->steps, bar);
    print_numbers(p->out, "", loss, accuracy);
    if (l && !isnan(l->val_loss))
        print_numbers(p->out, "val_", l->val_loss, l->val_accuracy);
    if (!l && step > p->first_step && step < p->steps)
        fprintf(p->out, " - ETA %.0fs",
                elapsed / (double)(step - p->first_step) *
                    (double)(p->steps - step));
    if (elapsed > 0)
        fprintf(p->out, " - %.0f samples/s", (double)samples / elapsed);
    fprintf(p->out, "\033[K"); /* clear what a longer line left behind */
    fflush(p->out);
}

void model__progress_bar(model_progress *p, int64_t epoch, int64_t step,
                         double loss, double accuracy, int64_t samples)
{
    if (p->mode != KILN_PROGRESS_BAR)
        return;
    draw_bar(p, epoch, step, loss, accuracy, samples, NULL);
    p->last_draw = model__now();
}

void model__progress_epoch_end(model_progress *p, const kiln_epoch_logs *l,
                               int64_t steps, int64_t samples)
{
    if (p->mode == KILN_PROGRESS_OFF)
        return;
    double elapsed = model__now() - p->epoch_start;
    if (p->mode == KILN_PROGRESS_BAR) {
        draw_bar(p, l->epoch, p->steps, l->loss, l->accuracy, samples, l);
    } else {
        fprintf(p->out, "Epoch %lld/%lld - %lld steps", (long long)l->epoch + 1,
                (long long)p->epochs, (long long)steps);
        print_numbers(p->out, "", l->loss, l->accuracy);
        if (!isnan(l->val_loss))
            print_numbers(p->out, "val_", l->val_loss, l->val_accuracy);
        fprintf(p->out, " - %.2fs - %.0f samples/s", elapsed,
                elapsed > 0 ? (double)samples / elapsed : 0.0);
    }
    fprintf(p->out, "\n");
    fflush(p->out);
}
