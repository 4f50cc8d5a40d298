/*
 * model.h - what the model files share: the model and layer records
 * (model.c builds them), batch staging and evaluation runs (fit.c), the
 * progress display (progress.c) and the description that checkpoints
 * carry (model_io.c).
 */
#ifndef KILN_NN_MODEL_H
#define KILN_NN_MODEL_H

#include <stdio.h>

#include "internal.h"
#include "tensor.h"

#define MODEL_PARAM_NAME_MAX 96
/* Sample dims of the input (kiln_dataset holds at most 4). */
#define MODEL_MAX_SAMPLE_DIMS 4

typedef enum model_layer_kind {
    LAYER_DENSE = 0,
    LAYER_CONV2D,
    LAYER_MAX_POOL2D,
    LAYER_AVG_POOL2D,
    LAYER_FLATTEN,
    LAYER_DROPOUT,
    LAYER_BATCH_NORM,
    LAYER_EMBEDDING,
    LAYER_RNN,
    LAYER_ACTIVATION,
    LAYER_RESIDUAL_ADD,
    LAYER_CONCAT,
    LAYER_KINDS
} model_layer_kind;

/* One layer: its hyper-parameters (what the description records) and its
 * place in the graph. */
typedef struct model_layer {
    model_layer_kind kind;
    kiln_activation act;
    int64_t units;            /* dense units, filters, RNN units, embedding
                                 dim                                      */
    int64_t vocab;            /* embedding                                */
    int kernel[2];            /* conv2d                                   */
    kiln_conv2d_params conv;
    kiln_pool2d_params pool;
    double rate;              /* dropout                                  */
    kiln_rnn_kind rnn;
    int return_sequences;
    int from;                 /* residual_add, concat                     */
    kiln_node *out;           /* [N, sample...]                           */
    int first_param, nparams; /* its range in kiln_model.params           */
} model_layer;

typedef struct model_param {
    char name[MODEL_PARAM_NAME_MAX];
    kiln_node *var;
    int trainable;            /* 0: batch norm's running statistics       */
    int layer;
} model_param;

struct kiln_model {
    kiln_context *ctx;
    kiln_dtype dtype;
    uint64_t seed;
    int in_ndim;
    int64_t in_shape[MODEL_MAX_SAMPLE_DIMS];
    kiln_graph *g;
    kiln_node *input;         /* [-1, in_shape...] of dtype               */
    model_layer *layers;
    int nlayers, layers_cap;
    model_param *params;
    int nparams, params_cap;

    /* kiln_model_compile. */
    int compiled;
    kiln_loss loss;
    kiln_optimizer_config opt_cfg;
    kiln_optimizer *opt;
    kiln_node *labels;        /* i32 [N]: classes (loss or accuracy)      */
    kiln_node *targets;       /* [N, output...]: sigmoid xent and MSE     */
    kiln_node *loss_node;     /* 0-D                                      */
    kiln_node *pred_class;    /* i32 [N], or NULL: no classes             */
    kiln_node *correct;       /* i32 0-D count, NULL with pred_class      */
    kiln_node *probs;         /* what predict returns                     */
    int ntrain;               /* trainable parameters                     */
    kiln_node **grads;        /* [ntrain]                                 */
    kiln_tensor **train_values; /* [ntrain] the variables' tensors        */

    /* Training position (resume) and what it was counted with. */
    int64_t global_step;
    int64_t batch;            /* 0 until a fit or a load sets them        */
    int64_t train_count;
    /* The seed of the run a loaded checkpoint continues (shuffles and
     * dropout masks come from it): resume refuses another. */
    uint64_t run_seed;
    int run_seed_known;

    /* Host staging buffers for batches, grown as needed. */
    void *stage_x, *stage_t;
    int32_t *stage_y;
    size_t stage_x_cap, stage_t_cap, stage_y_cap;
};

/* ---- model.c ------------------------------------------------------------- */

/** The name of a layer kind as in descriptions ("dense"). */
const char *model__kind_name(model_layer_kind kind);
const char *model__activation_name(kiln_activation a);
/** Elements of one sample of @n (a batch node: dims 1..). */
int64_t model__sample_numel(const kiln_node *n);
/** The node of the model's output (the last layer's, or the input). */
kiln_node *model__output(const kiln_model *m);
/** Parameter index by name, or -1. */
int model__param_index(const kiln_model *m, const char *name);

/* ---- batch.c and fit.c ------------------------------------------------------ */

/** One batch on the device; NULL members where not wanted. */
typedef struct model_batch {
    kiln_tensor *x, *labels, *targets;
    int64_t n;
} model_batch;

/** Checks that @d fits the model (sample size; labels or targets as the
 *  loss needs when @need_answers).  @call names the public call. */
kiln_status model__check_dataset(kiln_model *m, const char *call,
                                 const char *what, const kiln_dataset *d,
                                 int need_answers);
/** Copies samples idx[0..n) of @d (or start..start+n when @idx is NULL) to
 *  the device: x always, labels/targets when wanted and available. */
kiln_status model__stage(kiln_model *m, const char *call,
                         const kiln_dataset *d, const int64_t *idx,
                         int64_t start, int64_t n, int want_labels,
                         int want_targets, model_batch *b);
void model__batch_free(model_batch *b);
/** The feeds of a staged batch: x, and labels/targets where staged;
 *  returns how many (at most 3). */
int model__batch_feeds(const kiln_model *m, const model_batch *b,
                       kiln_feed *feeds);
/** Values in one sample of @d. */
int64_t model__dataset_sample_numel(const kiln_dataset *d);
/** Classes of the output for labels: C of [N, C] logits, 2 for one output. */
int64_t model__output_classes(const kiln_model *m);
/** A new 1-D device buffer of @n values (per-step losses, counts). */
kiln_tensor *model__new_buffer(kiln_context *ctx, kiln_dtype dtype,
                               int64_t n);
/** Copies the 0-D or [n] value @v into dst[at .. at+n) of a 1-D @dst. */
kiln_status model__store_at(kiln_tensor *dst, int64_t at, kiln_tensor *v);
/** Reads elements [from, to) of a 1-D device buffer as doubles into @out. */
kiln_status model__read_range(kiln_tensor *buf, int64_t from, int64_t to,
                              double *out);

/* ---- progress.c ------------------------------------------------------------ */

/** Seconds on a monotonic clock. */
double model__now(void);

typedef struct model_progress {
    FILE *out;
    kiln_progress mode;       /* BAR, LINES or OFF once resolved          */
    int64_t epochs, steps;    /* of the fit; steps per epoch              */
    int64_t first_step;       /* of this epoch (after a resume: > 0)      */
    double epoch_start, last_draw;
} model_progress;

/** Resolves AUTO (a bar when @out is a terminal) and starts the display. */
void model__progress_begin(model_progress *p, kiln_progress mode, FILE *out,
                           int64_t epochs, int64_t steps_per_epoch);
/** An epoch starts (at step @first_step when resumed mid-epoch). */
void model__progress_epoch_start(model_progress *p, int64_t first_step);
/** Is a bar redraw due (at most ten a second)? */
int model__progress_due(const model_progress *p);
/** Redraws the bar: @step steps of @epoch done, with the running loss and
 *  accuracy (NaN: not shown) and @samples trained in this epoch so far. */
void model__progress_bar(model_progress *p, int64_t epoch, int64_t step,
                         double loss, double accuracy, int64_t samples);
/** The epoch's final line (a finished bar, or a plain line). */
void model__progress_epoch_end(model_progress *p, const kiln_epoch_logs *l,
                               int64_t steps, int64_t samples);

/* ---- model_io.c ------------------------------------------------------------- */

/** The model's description as JSON text (malloc'd), or NULL after an
 *  out-of-memory error recorded under @call. */
char *model__describe(const kiln_model *m, const char *call);

#endif /* KILN_NN_MODEL_H */
