/*
 * metrics.c - classification metrics on the host: the confusion matrix,
 * accuracy, per-class precision, recall and F1 and their macro averages
 * (kiln_metrics_compute; kiln_model_evaluate fills them from the model's
 * predicted classes).
 *
 * A class that is never predicted has precision 0/0 and one that never
 * occurs recall 0/0: both are reported as 0 (scikit-learn's
 * zero_division=0), and the macro averages include them, so a model that
 * ignores a class is not flattered.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void kiln_metrics_free(kiln_metrics *m)
{
    if (!m)
        return;
    free(m->precision);
    free(m->recall);
    free(m->f1);
    free(m->confusion);
    memset(m, 0, sizeof *m);
}

static double ratio(int64_t num, int64_t den)
{
    return den ? (double)num / (double)den : 0.0;
}

kiln_status kiln_metrics_compute(kiln_context *ctx, int classes, int64_t n,
                                 const int32_t *truth,
                                 const int32_t *predicted, kiln_metrics *out)
{
    const char *call = "kiln_metrics_compute";
    if (!ctx)
        return KILN_ERROR_INVALID_ARGUMENT;
    if (!out)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: out is NULL", call);
    memset(out, 0, sizeof *out);
    if (classes < 1 || classes > 65536 || n < 0 ||
        (n > 0 && (!truth || !predicted)))
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: %d classes (1 to 65536), %lld samples%s",
                           call, classes, (long long)n,
                           n > 0 && (!truth || !predicted)
                               ? " with a NULL array"
                               : "");
    for (int64_t i = 0; i < n; i++)
        if (truth[i] < 0 || truth[i] >= classes || predicted[i] < 0 ||
            predicted[i] >= classes)
            return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                               "%s: sample %lld has true class %d and "
                               "prediction %d; classes are 0 to %d", call,
                               (long long)i, (int)truth[i], (int)predicted[i],
                               classes - 1);
    size_t c = (size_t)classes;
    out->confusion = calloc(c * c, sizeof *out->confusion);
    out->precision = calloc(c, sizeof(double));
    out->recall = calloc(c, sizeof(double));
    out->f1 = calloc(c, sizeof(double));
    if (!out->confusion || !out->precision || !out->recall || !out->f1) {
        kiln_metrics_free(out);
        return kiln__error(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                           "%s: out of host memory for %d classes", call,
                           classes);
    }
    int64_t right = 0;
    for (int64_t i = 0; i < n; i++) {
        out->confusion[(size_t)truth[i] * c + (size_t)predicted[i]]++;
        right += truth[i] == predicted[i];
    }
    for (size_t k = 0; k < c; k++) {
        int64_t tp = out->confusion[k * c + k], as_k = 0, is_k = 0;
        for (size_t j = 0; j < c; j++) {
            as_k += out->confusion[j * c + k]; /* predicted k */
            is_k += out->confusion[k * c + j]; /* truly k     */
        }
        double p = ratio(tp, as_k), r = ratio(tp, is_k);
        out->precision[k] = p;
        out->recall[k] = r;
        out->f1[k] = p + r > 0 ? 2 * p * r / (p + r) : 0.0;
        out->macro_precision += p / (double)c;
        out->macro_recall += r / (double)c;
        out->macro_f1 += out->f1[k] / (double)c;
    }
    out->count = n;
    out->classes = classes;
    out->loss = NAN;
    out->accuracy = n ? (double)right / (double)n : NAN;
    return KILN_OK;
}
