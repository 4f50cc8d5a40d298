/*
 * fit.c - the training loop (kiln_model_fit), evaluation and prediction:
 * batches (batch.c) staged from host data sets onto the device, one graph
 * run per step fetching the loss and every gradient, optional clipping, the
 * optimizer's fused updates, validation, early stopping, checkpoints and
 * resume.
 *
 * Host syncs: each step's loss (and correct count) is copied into a slot
 * of a device buffer that is read once at the end of the epoch, and
 * otherwise only when the progress bar redraws, so a step never waits for
 * the device (clip_norm excepted: clipping needs the norm on the host).
 *
 * Determinism: the shuffle of epoch e is a Fisher-Yates permutation from
 * (model seed, e), and dropout's stream for a step is set from the global
 * step, so a run resumed from a checkpoint at step s computes exactly what
 * the uninterrupted run computed from step s on.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h" /* kiln__graph_prepare_replay */
#include "nn/model.h"

#define FIT_CALL "kiln_model_fit"
#define DEFAULT_BATCH 32

/* ---- evaluation and prediction ------------------------------------------- */

/*
 * Runs @d through the model in evaluation mode: the mean loss and, when
 * the model predicts classes and @d has labels, the accuracy (NaN
 * otherwise) and, if @pred is not NULL, the predicted classes (malloc'd,
 * count entries; NULL without classes).
 */
static kiln_status run_evaluation(kiln_model *m, const char *call,
                                  const kiln_dataset *d, int64_t batch,
                                  double *loss, double *accuracy,
                                  int32_t **pred)
{
    kiln_context *ctx = m->ctx;
    *loss = NAN;
    *accuracy = NAN;
    if (pred)
        *pred = NULL;
    int classes = m->pred_class && d->y;
    int64_t nb = (d->count + batch - 1) / batch;
    kiln_tensor *losses = model__new_buffer(ctx, m->dtype, nb);
    kiln_tensor *preds = classes ? model__new_buffer(ctx, KILN_I32, d->count) : NULL;
    double *host_losses = malloc(sizeof(double) * (size_t)nb);
    double *host_preds = classes ? malloc(sizeof(double) *
                                          (size_t)d->count)
                                 : NULL;
    kiln_status st = kiln_status_of(ctx);
    if (st == KILN_OK && (!host_losses || (classes && !host_preds)))
        st = kiln__error(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                         "%s: out of host memory", call);
    kiln_graph_set_training(m->g, 0);
    int want_labels = m->loss == KILN_LOSS_SOFTMAX_XENT;
    for (int64_t b = 0; st == KILN_OK && b < nb; b++) {
        int64_t i0 = b * batch, n = d->count - i0 < batch ? d->count - i0
                                                           : batch;
        model_batch mb;
        st = model__stage(m, call, d, NULL, i0, n, want_labels,
                          m->targets != NULL, &mb);
        if (st != KILN_OK)
            break;
        kiln_feed feeds[3];
        int nfeeds = model__batch_feeds(m, &mb, feeds);
        kiln_node *fetch[2] = {m->loss_node, m->pred_class};
        kiln_tensor *out[2] = {NULL, NULL};
        st = kiln_graph_run(m->g, nfeeds, feeds, classes ? 2 : 1, fetch,
                            out);
        if (st == KILN_OK)
            st = model__store_at(losses, b, out[0]);
        if (st == KILN_OK && classes)
            st = model__store_at(preds, i0, out[1]);
        kiln_tensor_free(out[0]);
        kiln_tensor_free(out[1]);
        model__batch_free(&mb);
    }
    if (st == KILN_OK)
        st = model__read_range(losses, 0, nb, host_losses);
    if (st == KILN_OK && classes)
        st = model__read_range(preds, 0, d->count, host_preds);
    if (st == KILN_OK) {
        /* Each batch's loss is a mean: weigh it by the batch's size. */
        double sum = 0;
        for (int64_t b = 0; b < nb; b++) {
            int64_t n = d->count - b * batch < batch ? d->count - b * batch
                                                      : batch;
            sum += host_losses[b] * (double)n;
        }
        *loss = sum / (double)d->count;
        if (classes) {
            int64_t right = 0;
            for (int64_t i = 0; i < d->count; i++)
                right += (int32_t)host_preds[i] == d->y[i];
            *accuracy = (double)right / (double)d->count;
            if (pred) {
                *pred = malloc(sizeof(int32_t) * (size_t)d->count);
                if (!*pred)
                    st = kiln__error(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                     "%s: out of host memory", call);
                for (int64_t i = 0; *pred && i < d->count; i++)
                    (*pred)[i] = (int32_t)host_preds[i];
            }
        }
    }
    kiln_tensor_free(losses);
    kiln_tensor_free(preds);
    free(host_losses);
    free(host_preds);
    return st;
}

static kiln_status check_batch(kiln_model *m, const char *call,
                               int64_t *batch)
{
    if (*batch == 0)
        *batch = DEFAULT_BATCH;
    if (*batch < 0)
        return kiln__error(m->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: batch %lld (needs >= 1, or 0 for %d)", call,
                           (long long)*batch, DEFAULT_BATCH);
    return KILN_OK;
}

/* Common entry checks; KILN_OK when @m may run. */
static kiln_status begin(kiln_model *m, const char *call, int need_compiled)
{
    if (!m)
        return KILN_ERROR_INVALID_ARGUMENT;
    if (kiln_status_of(m->ctx) != KILN_OK)
        return kiln_status_of(m->ctx);
    if (m->nlayers == 0)
        return kiln__error(m->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: the model has no layers", call);
    if (need_compiled && !m->compiled)
        return kiln__error(m->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: the model is not compiled "
                           "(kiln_model_compile)", call);
    return KILN_OK;
}

kiln_status kiln_model_evaluate(kiln_model *m, const kiln_dataset *d,
                                int64_t batch, kiln_metrics *out)
{
    const char *call = "kiln_model_evaluate";
    if (out)
        memset(out, 0, sizeof *out);
    kiln_status st = begin(m, call, 1);
    if (st != KILN_OK)
        return st;
    if (!out)
        return kiln__error(m->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: out is NULL", call);
    if ((st = check_batch(m, call, &batch)) != KILN_OK ||
        (st = model__check_dataset(m, call, "evaluation", d, 1)) != KILN_OK)
        return st;
    double loss, accuracy;
    int32_t *pred = NULL;
    st = run_evaluation(m, call, d, batch, &loss, &accuracy, &pred);
    if (st == KILN_OK && pred) {
        int classes = (int)model__output_classes(m);
        if (d->classes > classes)
            classes = d->classes;
        st = kiln_metrics_compute(m->ctx, classes, d->count, d->y, pred, out);
    }
    free(pred);
    if (st == KILN_OK) {
        out->count = d->count;
        out->loss = loss;
        out->accuracy = accuracy;
    }
    return st;
}

kiln_tensor *kiln_model_predict(kiln_model *m, const kiln_dataset *d,
                                int64_t batch)
{
    const char *call = "kiln_model_predict";
    if (begin(m, call, 0) != KILN_OK || check_batch(m, call, &batch) ||
        model__check_dataset(m, call, "prediction", d, 0))
        return NULL;
    /* Not compiled: the last layer's output as it is. */
    kiln_node *what = m->compiled ? m->probs : model__output(m);
    int64_t shape[KILN_MAX_DIMS];
    int nd = kiln_node_shape(what, shape);
    shape[0] = d->count;
    kiln_tensor *result = kiln_tensor_new(m->ctx, m->dtype, nd, shape);
    kiln_status st = result ? KILN_OK : kiln_status_of(m->ctx);
    kiln_graph_set_training(m->g, 0);
    for (int64_t i0 = 0; st == KILN_OK && i0 < d->count; i0 += batch) {
        int64_t n = d->count - i0 < batch ? d->count - i0 : batch;
        model_batch mb;
        st = model__stage(m, call, d, NULL, i0, n, 0, 0, &mb);
        if (st != KILN_OK)
            break;
        kiln_feed feed = {m->input, mb.x};
        kiln_tensor *out = NULL;
        st = kiln_graph_run(m->g, 1, &feed, 1, &what, &out);
        kiln_tensor *rows = st == KILN_OK ? kiln_slice(result, 0, i0, i0 + n,
                                                       1)
                                          : NULL;
        if (st == KILN_OK)
            st = rows ? kiln_copy(rows, out) : kiln_status_of(m->ctx);
        kiln_tensor_free(rows);
        kiln_tensor_free(out);
        model__batch_free(&mb);
    }
    if (st != KILN_OK) {
        kiln_tensor_free(result);
        return NULL;
    }
    return result;
}

/* ---- fit -------------------------------------------------------------------- */

void kiln_history_free(kiln_history *h)
{
    if (!h)
        return;
    free(h->loss);
    free(h->accuracy);
    free(h->val_loss);
    free(h->val_accuracy);
    free(h->step_loss);
    memset(h, 0, sizeof *h);
    h->best_epoch = -1;
}

/* splitmix64 */
static uint64_t mix_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The order of epoch @epoch: Fisher-Yates from (seed, epoch), unbiased
 * (rejection), or the identity without shuffling. */
static void epoch_order(int64_t *order, int64_t n, uint64_t seed,
                        int64_t epoch, int shuffle)
{
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    if (!shuffle)
        return;
    uint64_t s = seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(epoch + 1));
    for (int64_t i = n - 1; i > 0; i--) {
        uint64_t range = (uint64_t)i + 1;
        uint64_t limit = UINT64_MAX - UINT64_MAX % range, r;
        do
            r = mix_next(&s);
        while (r >= limit);
        int64_t j = (int64_t)(r % range);
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* The learning rate the optimizer uses when no schedule is given: its
 * configured lr, or the default kiln_optimizer_new fills in (kiln.h). */
static double configured_lr(const kiln_optimizer_config *c)
{
    if (c->lr != 0)
        return c->lr;
    if (c->kind == KILN_OPT_ADAM || c->kind == KILN_OPT_ADAMW)
        return 1e-3;
    return c->kind == KILN_OPT_ADADELTA ? 1.0 : 0.01;
}

/* Everything fit allocates, freed in one place. */
/*
 * Recorded steps.  A full-batch step (graph run: forward, loss, gradients;
 * then the optimizer update) is captured once and replayed for the later
 * full batches: the batch is copied into the capture's own input tensors,
 * kiln_optimizer_begin_step writes the step's learning rate and bias
 * corrections to the device, kiln__graph_prepare_replay writes the step's
 * dropout offset (global step << 32, what an eager step draws at) to the
 * graph's device counter that the recorded dropout kernels read, and the
 * replay re-submits the same kernels (a Vulkan command buffer; OpenCL's
 * prepared enqueue list) without scheduling, allocating or validating
 * anything again.  So a model with dropout draws fresh masks per replayed
 * step, the same as eagerly.  Not with gradient clipping (it decides on
 * the host), nor for the first step of a fit (it creates the optimizer's
 * state) or a partial last batch.
 */
typedef struct step_replay {
    int enabled;
    kiln_recording *rec;
    model_batch in;                  /* the capture's inputs, a full batch */
    kiln_tensor **out;               /* what the capture writes (fetches)  */
    int nout;
} step_replay;

static void step_replay_free(step_replay *r)
{
    kiln_recording_free(r->rec);
    model__batch_free(&r->in);
    for (int i = 0; r->out && i < r->nout; i++)
        kiln_tensor_free(r->out[i]);
    free(r->out);
    memset(r, 0, sizeof *r);
}

/* Copies @src into @dst, or makes @dst a copy of it the first time. */
static kiln_status stage_into(kiln_tensor **dst, kiln_tensor *src)
{
    if (!src)
        return KILN_OK;
    if (!*dst) {
        *dst = kiln_contiguous_copy(src);
        return *dst ? KILN_OK : kiln_status_of(kiln_tensor_context(src));
    }
    return kiln_copy(*dst, src);
}

/* One training step through the recording (capturing it first if there
 * is none yet); the step's outputs are then in r->out. */
static kiln_status replay_step(kiln_model *m, step_replay *r,
                               const model_batch *mb, int nfetch,
                               kiln_node *const *fetch, int first_grad,
                               double lr)
{
    kiln_status st = stage_into(&r->in.x, mb->x);
    if (st == KILN_OK)
        st = stage_into(&r->in.labels, mb->labels);
    if (st == KILN_OK)
        st = stage_into(&r->in.targets, mb->targets);
    if (st == KILN_OK)
        st = kiln_optimizer_begin_step(m->opt, lr);
    if (st == KILN_OK) {
        /* Dropout: this step's masks, as the eager path draws them. */
        kiln_graph_set_runs(m->g, (uint64_t)m->global_step);
        st = kiln__graph_prepare_replay(m->g);
    }
    if (st != KILN_OK || r->rec) {
        if (st == KILN_OK)
            st = kiln_recording_replay(r->rec);
        /* Where the graph run would have left it (the capture's run did). */
        kiln_graph_set_runs(m->g, (uint64_t)m->global_step + 1);
        return st;
    }

    r->out = calloc((size_t)nfetch, sizeof *r->out);
    if (!r->out)
        return kiln__error(m->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                           FIT_CALL ": out of host memory");
    r->nout = nfetch;
    r->in.n = mb->n;
    kiln_feed feeds[3];
    int nfeeds = model__batch_feeds(m, &r->in, feeds);
    st = kiln_recording_begin(m->ctx);
    if (st != KILN_OK)
        return st;
    st = kiln_graph_run(m->g, nfeeds, feeds, nfetch, fetch, r->out);
    if (st == KILN_OK)
        st = kiln_optimizer_step_prepared(m->opt, m->ntrain,
                                          m->train_values,
                                          r->out + first_grad);
    kiln_recording *rec = kiln_recording_end(m->ctx);
    if (st != KILN_OK || !rec) {
        kiln_recording_free(rec);
        return st != KILN_OK ? st : kiln_status_of(m->ctx);
    }
    r->rec = rec;
    return kiln_recording_replay(rec);
}

typedef struct fit_state {
    int64_t *order;
    kiln_tensor *losses, *corrects;  /* per step of an epoch, on the device */
    double *host_losses, *host_corrects;
    int64_t *step_sizes;
    kiln_tensor **best;              /* restore_best snapshots, per param  */
    kiln_node **fetch;
    kiln_tensor **out;
    kiln_tensor **grads;
} fit_state;

static void fit_state_free(fit_state *s, int nparams)
{
    free(s->order);
    kiln_tensor_free(s->losses);
    kiln_tensor_free(s->corrects);
    free(s->host_losses);
    free(s->host_corrects);
    free(s->step_sizes);
    for (int i = 0; s->best && i < nparams; i++)
        kiln_tensor_free(s->best[i]);
    free(s->best);
    free(s->fetch);
    free(s->out);
    free(s->grads);
}

static int wants_accuracy(kiln_monitor mon)
{
    return mon == KILN_MONITOR_VAL_ACCURACY || mon == KILN_MONITOR_ACCURACY;
}

/* Keeps (or refreshes) a device copy of every parameter in s->best. */
static kiln_status snapshot(kiln_model *m, fit_state *s)
{
    for (int i = 0; i < m->nparams; i++) {
        kiln_tensor *v = kiln_g_variable_tensor(m->params[i].var);
        if (!s->best[i]) {
            s->best[i] = kiln_contiguous_copy(v);
            if (!s->best[i])
                return kiln_status_of(m->ctx);
        } else {
            kiln_status st = kiln_copy(s->best[i], v);
            if (st != KILN_OK)
                return st;
        }
    }
    return KILN_OK;
}

static kiln_status restore(kiln_model *m, fit_state *s)
{
    for (int i = 0; i < m->nparams; i++) {
        kiln_status st = kiln_copy(kiln_g_variable_tensor(m->params[i].var),
                                   s->best[i]);
        if (st != KILN_OK)
            return st;
    }
    return KILN_OK;
}

/* Allocates the history's arrays for @entries epochs and @steps steps. */
static int history_reserve(kiln_history *h, int64_t entries, int64_t steps)
{
    h->loss = calloc((size_t)(entries ? entries : 1), sizeof(double));
    h->accuracy = calloc((size_t)(entries ? entries : 1), sizeof(double));
    h->val_loss = calloc((size_t)(entries ? entries : 1), sizeof(double));
    h->val_accuracy = calloc((size_t)(entries ? entries : 1),
                             sizeof(double));
    h->step_loss = calloc((size_t)(steps ? steps : 1), sizeof(double));
    return h->loss && h->accuracy && h->val_loss && h->val_accuracy &&
           h->step_loss;
}

kiln_status kiln_model_fit(kiln_model *m, const kiln_dataset *train,
                           const kiln_fit_options *o, kiln_history *h)
{
    const char *call = FIT_CALL;
    kiln_history local_history;
    if (!h)
        h = &local_history;
    memset(h, 0, sizeof *h);
    h->best_epoch = -1;
    h->best_value = NAN;
    kiln_status st = begin(m, call, 1);
    if (st != KILN_OK)
        return st;
    kiln_context *ctx = m->ctx;
    kiln_fit_options opt = o ? *o : (kiln_fit_options){0};
    if (opt.epochs == 0)
        opt.epochs = 1;
    if (opt.epochs < 0 || opt.checkpoint_every < 0 || opt.patience < 0 ||
        !(opt.validation_split >= 0 && opt.validation_split < 1) ||
        !(opt.clip_norm >= 0) || !(opt.min_delta >= 0) ||
        (unsigned)opt.monitor > KILN_MONITOR_ACCURACY ||
        (unsigned)opt.progress > KILN_PROGRESS_OFF)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: options out of range (epochs %lld, "
                           "validation_split %g, clip_norm %g, patience %d, "
                           "min_delta %g, checkpoint_every %lld, monitor %d, "
                           "progress %d)", call, (long long)opt.epochs,
                           opt.validation_split, opt.clip_norm, opt.patience,
                           opt.min_delta, (long long)opt.checkpoint_every,
                           (int)opt.monitor, (int)opt.progress);
    if ((st = check_batch(m, call, &opt.batch)) != KILN_OK ||
        (st = model__check_dataset(m, call, "training", train, 1)) != KILN_OK)
        return st;

    /* Training and validation sets: views, nothing copied. */
    kiln_dataset tr = *train, val = {0};
    int has_val = 0;
    if (opt.validation) {
        if ((st = model__check_dataset(m, call, "validation", opt.validation,
                                       1)) != KILN_OK)
            return st;
        val = *opt.validation;
        has_val = 1;
    } else if (opt.validation_split > 0) {
        int64_t nval = (int64_t)floor((double)train->count *
                                      opt.validation_split);
        if (nval < 1 || nval >= train->count)
            return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                               "%s: validation_split %g of %lld samples "
                               "leaves %lld for validation and %lld for "
                               "training (both need >= 1)", call,
                               opt.validation_split, (long long)train->count,
                               (long long)nval,
                               (long long)(train->count - nval));
        int64_t ntr = train->count - nval;
        size_t size = (size_t)model__dataset_sample_numel(train);
        tr.count = ntr;
        val = *train;
        val.count = nval;
        val.x = train->x + (size_t)ntr * size;
        val.y = train->y ? train->y + ntr : NULL;
        val.targets = train->targets
                          ? train->targets + (size_t)ntr *
                                                 (size_t)train->target_dim
                          : NULL;
        has_val = 1;
    }
    int has_classes = m->correct && tr.y;
    kiln_monitor mon = opt.monitor;
    if (mon == KILN_MONITOR_AUTO)
        mon = has_val ? KILN_MONITOR_VAL_LOSS : KILN_MONITOR_LOSS;
    int mon_val = mon == KILN_MONITOR_VAL_LOSS ||
                  mon == KILN_MONITOR_VAL_ACCURACY;
    if ((mon_val && !has_val) || (wants_accuracy(mon) && !has_classes))
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: cannot monitor %s %s", call,
                           mon_val ? "validation" : "training",
                           mon_val && !has_val
                               ? "without validation data"
                               : "accuracy without classes (labels and a "
                                 "class output)");

    /* Where to start: epoch 0, or the model's global step. */
    int64_t batch = opt.batch, ntrain = tr.count;
    int64_t spe = (ntrain + batch - 1) / batch;
    int64_t start = 0;
    if (opt.resume && m->global_step > 0) {
        if (m->batch != batch || m->train_count != ntrain)
            return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                               "%s: resume at step %lld was counted with "
                               "batch %lld over %lld training samples; this "
                               "fit has batch %lld over %lld", call,
                               (long long)m->global_step, (long long)m->batch,
                               (long long)m->train_count, (long long)batch,
                               (long long)ntrain);
        if (m->run_seed_known && m->run_seed != m->seed)
            return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                               "%s: resume at step %lld continues a run of "
                               "model seed %llu, this model has seed %llu "
                               "(its shuffles and dropout masks differ)",
                               call, (long long)m->global_step,
                               (unsigned long long)m->run_seed,
                               (unsigned long long)m->seed);
        start = m->global_step;
    }
    m->run_seed_known = 0;
    m->global_step = start;
    m->batch = batch;
    m->train_count = ntrain;
    int64_t start_epoch = start / spe;
    int64_t entries = opt.epochs > start_epoch ? opt.epochs - start_epoch : 0;
    h->first_epoch = start_epoch;

    fit_state s = {0};
    int nfetch = 1 + has_classes + m->ntrain;
    s.order = malloc(sizeof(int64_t) * (size_t)ntrain);
    s.host_losses = malloc(sizeof(double) * (size_t)spe);
    s.host_corrects = malloc(sizeof(double) * (size_t)spe);
    s.step_sizes = malloc(sizeof(int64_t) * (size_t)spe);
    s.best = calloc((size_t)(m->nparams ? m->nparams : 1), sizeof *s.best);
    s.fetch = malloc(sizeof *s.fetch * (size_t)nfetch);
    s.out = calloc((size_t)nfetch, sizeof *s.out);
    s.grads = malloc(sizeof *s.grads * (size_t)(m->ntrain ? m->ntrain : 1));
    if (!s.order || !s.host_losses || !s.host_corrects || !s.step_sizes ||
        !s.best || !s.fetch || !s.out || !s.grads ||
        !history_reserve(h, entries, entries * spe)) {
        fit_state_free(&s, m->nparams);
        kiln_history_free(h);
        return kiln__error(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                           "%s: out of host memory", call);
    }
    s.losses = model__new_buffer(ctx, m->dtype, spe);
    s.corrects = model__new_buffer(ctx, KILN_I32, spe);
    st = s.losses && s.corrects ? KILN_OK : kiln_status_of(ctx);
    s.fetch[0] = m->loss_node;
    if (has_classes)
        s.fetch[1] = m->correct;
    for (int i = 0; i < m->ntrain; i++)
        s.fetch[1 + has_classes + i] = m->grads[i];
    for (int64_t i = 0; i < spe; i++)
        s.step_sizes[i] = ntrain - i * batch < batch ? ntrain - i * batch
                                                     : batch;

    step_replay replay = {0};
    replay.enabled = !opt.eager_steps && opt.clip_norm == 0 &&
                     kiln__env_long("KILN_REPLAY", 1) != 0;

    model_progress progress;
    model__progress_begin(&progress, opt.progress, opt.progress_out,
                          opt.epochs, spe);
    int higher_better = wants_accuracy(mon);
    double best = higher_better ? -INFINITY : INFINITY;
    int64_t waited = 0;
    double lr = configured_lr(&m->opt_cfg);
    double train_seconds = 0, fit_start = model__now();
    int64_t trained = 0;
    int stop = 0;

    for (int64_t e = start_epoch; st == KILN_OK && !stop && e < opt.epochs;
         e++) {
        epoch_order(s.order, ntrain, m->seed, e, opt.shuffle);
        int64_t b0 = e == start_epoch ? start % spe : 0;
        int64_t samples = 0;
        double epoch_start = model__now();
        model__progress_epoch_start(&progress, b0);
        for (int64_t b = b0; st == KILN_OK && b < spe; b++) {
            int64_t n = s.step_sizes[b];
            model_batch mb;
            st = model__stage(m, call, &tr, s.order + b * batch, 0, n,
                              m->loss == KILN_LOSS_SOFTMAX_XENT ||
                                  has_classes,
                              m->targets != NULL, &mb);
            if (st != KILN_OK)
                break;
            kiln_context_stats before;
            kiln_context_get_stats(ctx, &before);
            kiln_graph_set_training(m->g, 1);
            if (st == KILN_OK && opt.lr_schedule)
                lr = kiln_lr_at(opt.lr_schedule,
                                opt.lr_per_epoch ? (double)e
                                                 : (double)m->global_step);
            if (replay.enabled && n == batch && m->global_step > start) {
                st = replay_step(m, &replay, &mb, nfetch, s.fetch,
                                 1 + has_classes,
                                 opt.lr_schedule ? lr : -1.0);
                if (st == KILN_OK)
                    st = model__store_at(s.losses, b, replay.out[0]);
                if (st == KILN_OK && has_classes)
                    st = model__store_at(s.corrects, b, replay.out[1]);
                model__batch_free(&mb);
                if (st != KILN_OK)
                    break;
                h->replayed_steps++;
                h->recorded_step_kernels =
                    kiln_recording_dispatches(replay.rec);
                goto step_done;
            }
            kiln_feed feeds[3];
            int nfeeds = model__batch_feeds(m, &mb, feeds);
            /* Dropout draws run r's masks at Philox offset r * 2^32: tie
             * them to the step, so a resumed run draws the same ones. */
            kiln_graph_set_runs(m->g, (uint64_t)m->global_step);
            st = kiln_graph_run(m->g, nfeeds, feeds, nfetch, s.fetch, s.out);
            if (st == KILN_OK && m->global_step == start) {
                kiln_graph_stats gs;
                kiln_graph_get_stats(m->g, &gs);
                h->kernels_per_step = gs.kernels;
            }
            if (st == KILN_OK) {
                kiln_graph_stats gs;
                kiln_graph_get_stats(m->g, &gs);
                if (gs.peak_bytes > h->peak_step_bytes)
                    h->peak_step_bytes = gs.peak_bytes;
            }
            for (int i = 0; st == KILN_OK && i < m->ntrain; i++)
                s.grads[i] = s.out[1 + has_classes + i];
            if (st == KILN_OK && opt.clip_norm > 0)
                st = kiln_clip_grad_norm(s.grads, m->ntrain, opt.clip_norm,
                                         NULL);
            if (st == KILN_OK)
                st = kiln_optimizer_step(m->opt, m->ntrain, m->train_values,
                                         s.grads,
                                         opt.lr_schedule ? lr : -1.0);
            if (st == KILN_OK)
                st = model__store_at(s.losses, b, s.out[0]);
            if (st == KILN_OK && has_classes)
                st = model__store_at(s.corrects, b, s.out[1]);
            for (int i = 0; i < nfetch; i++) {
                kiln_tensor_free(s.out[i]);
                s.out[i] = NULL;
            }
            model__batch_free(&mb);
            if (st != KILN_OK)
                break;
            if (m->global_step == start) {
                kiln_context_stats after;
                kiln_context_get_stats(ctx, &after);
                h->step_kernels_total = after.dispatches - before.dispatches;
            }
        step_done:
            m->global_step++;
            samples += n;
            trained += n;
            if (model__progress_due(&progress)) {
                /* The running means so far: the one host read a redraw
                 * costs. */
                st = model__read_range(s.losses, b0, b + 1, s.host_losses + b0);
                if (st == KILN_OK && has_classes)
                    st = model__read_range(s.corrects, b0, b + 1,
                                    s.host_corrects + b0);
                double lsum = 0, right = 0;
                for (int64_t k = b0; st == KILN_OK && k <= b; k++) {
                    lsum += s.host_losses[k] * (double)s.step_sizes[k];
                    right += has_classes ? s.host_corrects[k] : 0;
                }
                if (st == KILN_OK)
                    model__progress_bar(&progress, e, b + 1,
                                        lsum / (double)samples,
                                        has_classes ? right / (double)samples
                                                    : NAN,
                                        samples);
            }
            if (st == KILN_OK && opt.checkpoint_path &&
                opt.checkpoint_every > 0 &&
                m->global_step % opt.checkpoint_every == 0)
                st = kiln_model_save(m, opt.checkpoint_path);
        }
        if (st != KILN_OK)
            break;
        /* The epoch's numbers: one read of the step buffers. */
        st = model__read_range(s.losses, b0, spe, s.host_losses + b0);
        if (st == KILN_OK && has_classes)
            st = model__read_range(s.corrects, b0, spe, s.host_corrects + b0);
        if (st != KILN_OK)
            break;
        train_seconds += model__now() - epoch_start;
        double lsum = 0, right = 0;
        for (int64_t k = b0; k < spe; k++) {
            lsum += s.host_losses[k] * (double)s.step_sizes[k];
            right += has_classes ? s.host_corrects[k] : 0;
            h->step_loss[h->steps++] = s.host_losses[k];
        }
        kiln_epoch_logs logs = {
            .epoch = e, .epochs = opt.epochs,
            .loss = lsum / (double)samples,
            .accuracy = has_classes ? right / (double)samples : NAN,
            .val_loss = NAN, .val_accuracy = NAN, .lr = lr,
            .global_step = m->global_step};
        if (has_val)
            st = run_evaluation(m, call, &val, batch, &logs.val_loss,
                                &logs.val_accuracy, NULL);
        if (st != KILN_OK)
            break;
        logs.seconds = model__now() - epoch_start;
        int64_t k = h->epochs++;
        h->loss[k] = logs.loss;
        h->accuracy[k] = logs.accuracy;
        h->val_loss[k] = logs.val_loss;
        h->val_accuracy[k] = logs.val_accuracy;

        /* Early stopping and the best weights. */
        double value = mon == KILN_MONITOR_VAL_LOSS       ? logs.val_loss
                       : mon == KILN_MONITOR_VAL_ACCURACY ? logs.val_accuracy
                       : mon == KILN_MONITOR_ACCURACY     ? logs.accuracy
                                                          : logs.loss;
        int better = higher_better ? value > best + opt.min_delta
                                   : value < best - opt.min_delta;
        if (better || h->best_epoch < 0) {
            best = value;
            h->best_epoch = e;
            h->best_value = value;
            waited = 0;
            if (opt.restore_best)
                st = snapshot(m, &s);
        } else {
            waited++;
        }
        model__progress_epoch_end(&progress, &logs, spe - b0, samples);
        if (opt.patience > 0 && waited >= opt.patience)
            stop = 1;
        if (opt.on_epoch && opt.on_epoch(&logs, opt.user))
            stop = 1;
        if (st == KILN_OK && opt.checkpoint_path && opt.checkpoint_every == 0)
            st = kiln_model_save(m, opt.checkpoint_path);
    }
    h->stopped_early = stop;
    if (st == KILN_OK && opt.restore_best && m->nparams && s.best[0])
        st = restore(m, &s);
    kiln_graph_set_training(m->g, 0);
    h->seconds = model__now() - fit_start;
    h->samples_per_second = train_seconds > 0 ? (double)trained /
                                                    train_seconds
                                              : 0;
    step_replay_free(&replay);
    fit_state_free(&s, m->nparams);
    if (h == &local_history)
        kiln_history_free(h);
    return st;
}
