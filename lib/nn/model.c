/*
 * model.c - sequential models (kiln.h, "Models"): the builder that turns
 * each layer call into graph nodes and parameter variables, compile (loss,
 * accuracy and prediction nodes, gradients, optimizer), the summary and
 * parameter access.  Training is in fit.c, checkpoints in model_io.c.
 *
 * A layer is committed only once all its nodes exist: a failed call leaves
 * the layer list and the parameter list as they were (the variables it
 * made stay in the graph, unused, which costs only their memory).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"

static const char *const kind_names[LAYER_KINDS] = {
    [LAYER_DENSE] = "dense",           [LAYER_CONV2D] = "conv2d",
    [LAYER_MAX_POOL2D] = "max_pool2d", [LAYER_AVG_POOL2D] = "avg_pool2d",
    [LAYER_FLATTEN] = "flatten",       [LAYER_DROPOUT] = "dropout",
    [LAYER_BATCH_NORM] = "batch_norm", [LAYER_EMBEDDING] = "embedding",
    [LAYER_RNN] = "rnn",               [LAYER_ACTIVATION] = "activation",
    [LAYER_RESIDUAL_ADD] = "residual_add", [LAYER_CONCAT] = "concat",
};

const char *model__kind_name(model_layer_kind kind)
{
    return (unsigned)kind < LAYER_KINDS ? kind_names[kind] : "?";
}

const char *model__activation_name(kiln_activation a)
{
    static const char *const names[] = {"none", "relu", "sigmoid", "tanh",
                                        "softmax"};
    return (unsigned)a <= KILN_ACT_SOFTMAX ? names[a] : "?";
}

int64_t model__sample_numel(const kiln_node *n)
{
    int64_t shape[KILN_MAX_DIMS];
    int nd = kiln_node_shape(n, shape);
    int64_t count = 1;
    for (int d = 1; d < nd; d++)
        count *= shape[d];
    return count;
}

kiln_node *model__output(const kiln_model *m)
{
    return m->nlayers ? m->layers[m->nlayers - 1].out : m->input;
}

int model__param_index(const kiln_model *m, const char *name)
{
    for (int i = 0; name && i < m->nparams; i++)
        if (strcmp(m->params[i].name, name) == 0)
            return i;
    return -1;
}

/* "[a, b, c]" of a node's sample dims (the batch dim left out). */
static const char *sample_string(const kiln_node *n, char *buf, size_t size)
{
    int64_t shape[KILN_MAX_DIMS];
    int nd = kiln_node_shape(n, shape);
    return kiln__shape_string(nd > 0 ? nd - 1 : 0, shape + 1, buf, size);
}

/* ---- creation ------------------------------------------------------------- */

kiln_model *kiln_model_new(kiln_context *ctx, kiln_dtype dtype, int ndim,
                           const int64_t *sample_shape, uint64_t seed)
{
    const char *call = "kiln_model_new";
    if (!ctx)
        return NULL;
    if (kiln_status_of(ctx) != KILN_OK)
        return NULL;
    if (dtype != KILN_F32 && dtype != KILN_F64)
        return kiln__error_null(ctx, KILN_ERROR_DTYPE,
                                "%s: models are f32 or f64, not %s", call,
                                kiln_dtype_name(dtype));
    if (!kiln__dtype_supported(ctx, dtype))
        return kiln__error_null(ctx, KILN_ERROR_DTYPE,
                                "%s: %s is not supported on this device", call,
                                kiln_dtype_name(dtype));
    if (ndim < 1 || ndim > MODEL_MAX_SAMPLE_DIMS || !sample_shape)
        return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "%s: samples have 1 to %d dims, got %d%s",
                                call, MODEL_MAX_SAMPLE_DIMS, ndim,
                                sample_shape ? "" : " and no shape");
    for (int d = 0; d < ndim; d++)
        if (sample_shape[d] < 1)
            return kiln__error_null(ctx, KILN_ERROR_INVALID_ARGUMENT,
                                    "%s: sample dimension %d is %lld (sizes "
                                    "are >= 1)", call, d,
                                    (long long)sample_shape[d]);
    kiln_model *m = calloc(1, sizeof *m);
    if (!m)
        return kiln__error_null(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                "%s: out of host memory", call);
    m->ctx = ctx;
    m->dtype = dtype;
    m->seed = seed;
    m->in_ndim = ndim;
    memcpy(m->in_shape, sample_shape, sizeof(int64_t) * (size_t)ndim);
    int64_t shape[KILN_MAX_DIMS] = {-1};
    memcpy(shape + 1, sample_shape, sizeof(int64_t) * (size_t)ndim);
    m->g = kiln_graph_new(ctx);
    m->input = kiln_g_input(m->g, "x", dtype, ndim + 1, shape);
    if (!m->input) {
        kiln_model_free(m);
        return NULL;
    }
    return m;
}

static void drop_compiled(kiln_model *m)
{
    kiln_optimizer_free(m->opt);
    free(m->grads);
    free(m->train_values);
    m->opt = NULL;
    m->grads = NULL;
    m->train_values = NULL;
    m->compiled = 0;
}

void kiln_model_free(kiln_model *m)
{
    if (!m)
        return;
    drop_compiled(m);
    kiln_graph_free(m->g);
    free(m->layers);
    free(m->params);
    free(m->stage_x);
    free(m->stage_t);
    free(m->stage_y);
    free(m);
}

kiln_context *kiln_model_context(const kiln_model *m)
{
    return m ? m->ctx : NULL;
}

int kiln_model_layers(const kiln_model *m)
{
    return m ? m->nlayers : 0;
}

int kiln_model_output_shape(const kiln_model *m, int layer, int64_t *shape)
{
    if (!m || layer < -1 || layer >= m->nlayers)
        return -1;
    const kiln_node *n = layer < 0 ? m->input : m->layers[layer].out;
    int64_t full[KILN_MAX_DIMS];
    int nd = kiln_node_shape(n, full);
    if (shape && nd > 1)
        memcpy(shape, full + 1, sizeof(int64_t) * (size_t)(nd - 1));
    return nd - 1;
}

/* ---- building layers -------------------------------------------------------- */

/* KILN_OK when a layer may be added now, else the status to return. */
static kiln_status begin_layer(kiln_model *m, const char *call)
{
    if (!m)
        return KILN_ERROR_INVALID_ARGUMENT;
    if (kiln_status_of(m->ctx) != KILN_OK)
        return kiln_status_of(m->ctx);
    if (m->compiled)
        return kiln__error(m->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: the model is already compiled; add every "
                           "layer before kiln_model_compile", call);
    if (m->nlayers == m->layers_cap) {
        int cap = m->layers_cap ? 2 * m->layers_cap : 16;
        model_layer *l = realloc(m->layers, sizeof *l * (size_t)cap);
        if (!l)
            return kiln__error(m->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                               "%s: out of host memory", call);
        m->layers = l;
        m->layers_cap = cap;
    }
    return KILN_OK;
}

/* A parameter variable of the layer being built (index m->nlayers),
 * initialised from the model seed at a Philox offset of its own. */
static kiln_node *new_param(kiln_model *m, const char *call, const char *role,
                            int ndim, const int64_t *shape,
                            kiln_init_kind init, double a, double b,
                            int trainable)
{
    if (m->nparams == m->params_cap) {
        int cap = m->params_cap ? 2 * m->params_cap : 16;
        model_param *p = realloc(m->params, sizeof *p * (size_t)cap);
        if (!p)
            return kiln__error_null(m->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                    "%s: out of host memory", call);
        m->params = p;
        m->params_cap = cap;
    }
    model_param *p = &m->params[m->nparams];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "layer%d.%s.%s", m->nlayers,
             kind_names[m->layers[m->nlayers].kind], role);
    kiln_tensor *t = kiln_tensor_new(m->ctx, m->dtype, ndim, shape);
    /* Parameter k draws from counter k * 2^32: a tensor has fewer than
     * 2^31 elements, so no two parameters share random numbers. */
    if (!t || kiln_init(t, init, a, b, m->seed,
                        (uint64_t)m->nparams << 32) != KILN_OK) {
        kiln_tensor_free(t);
        return NULL;
    }
    p->var = kiln_g_variable(m->g, p->name, t);
    kiln_tensor_free(t);
    if (!p->var)
        return NULL;
    p->trainable = trainable;
    p->layer = m->nlayers;
    m->nparams++;
    return p->var;
}

static kiln_node *activate(kiln_node *x, kiln_activation a)
{
    switch (a) {
    case KILN_ACT_RELU: return kiln_g_relu(x);
    case KILN_ACT_SIGMOID: return kiln_g_sigmoid(x);
    case KILN_ACT_TANH: return kiln_g_tanh(x);
    case KILN_ACT_SOFTMAX: return kiln_g_softmax(x, kiln_node_ndim(x) - 1);
    default: return x;
    }
}

static kiln_status check_activation(kiln_model *m, const char *call,
                                    kiln_activation a)
{
    if ((unsigned)a > KILN_ACT_SOFTMAX)
        return kiln__error(m->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: unknown activation %d", call, (int)a);
    return KILN_OK;
}

/* Commits the layer prepared in m->layers[m->nlayers] with output @out,
 * or rolls its parameters back when @out is NULL (an error). */
static kiln_status finish_layer(kiln_model *m, int first_param, kiln_node *out)
{
    model_layer *l = &m->layers[m->nlayers];
    if (!out) {
        m->nparams = first_param;
        kiln_status st = kiln_status_of(m->ctx);
        return st != KILN_OK ? st : KILN_ERROR_INVALID_ARGUMENT;
    }
    l->out = out;
    l->first_param = first_param;
    l->nparams = m->nparams - first_param;
    m->nlayers++;
    return KILN_OK;
}

/* Starts a layer record of @kind; the current output in *x. */
static model_layer *prepare(kiln_model *m, model_layer_kind kind,
                            kiln_node **x)
{
    model_layer *l = &m->layers[m->nlayers];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    *x = model__output(m);
    return l;
}

/* Needs @x to be [N, C, H, W] (image samples [C, H, W]). */
static kiln_status need_images(kiln_model *m, const char *call, kiln_node *x)
{
    char buf[96];
    if (kiln_node_ndim(x) != 4)
        return kiln__error(m->ctx, KILN_ERROR_SHAPE,
                           "%s: needs [C, H, W] samples, layer %d gives %s",
                           call, m->nlayers - 1,
                           sample_string(x, buf, sizeof buf));
    return KILN_OK;
}

kiln_status kiln_model_dense(kiln_model *m, int64_t units, kiln_activation a)
{
    const char *call = "kiln_model_dense";
    kiln_status st = begin_layer(m, call);
    if (st != KILN_OK || (st = check_activation(m, call, a)) != KILN_OK)
        return st;
    if (units < 1)
        return kiln__error(m->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: %lld units (needs >= 1)", call,
                           (long long)units);
    kiln_node *x;
    model_layer *l = prepare(m, LAYER_DENSE, &x);
    l->units = units;
    l->act = a;
    int64_t shape[KILN_MAX_DIMS];
    int nd = kiln_node_shape(x, shape);
    int first = m->nparams;
    kiln_node *w = new_param(m, call, "weight", 2,
                             (int64_t[]){units, shape[nd - 1]},
                             KILN_INIT_XAVIER_UNIFORM, 0, 0, 1);
    kiln_node *b = w ? new_param(m, call, "bias", 1, &units, KILN_INIT_ZEROS,
                                 0, 0, 1)
                     : NULL;
    kiln_node *y = b ? kiln_g_add(kiln_g_gemm(x, 0, w, 1), b) : NULL;
    return finish_layer(m, first, y ? activate(y, a) : NULL);
}

kiln_status kiln_model_conv2d(kiln_model *m, int64_t filters, int kh, int kw,
                              const kiln_conv2d_params *p, kiln_activation a)
{
    const char *call = "kiln_model_conv2d";
    kiln_status st = begin_layer(m, call);
    if (st != KILN_OK || (st = check_activation(m, call, a)) != KILN_OK)
        return st;
    kiln_node *x;
    model_layer *l = prepare(m, LAYER_CONV2D, &x);
    if ((st = need_images(m, call, x)) != KILN_OK)
        return st;
    if (filters < 1 || kh < 1 || kw < 1)
        return kiln__error(m->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: %lld filters of %dx%d (all need >= 1)", call,
                           (long long)filters, kh, kw);
    l->units = filters;
    l->kernel[0] = kh;
    l->kernel[1] = kw;
    l->conv = p ? *p : (kiln_conv2d_params){0};
    l->act = a;
    int64_t shape[KILN_MAX_DIMS];
    kiln_node_shape(x, shape);
    int groups = l->conv.groups > 0 ? l->conv.groups : 1;
    if (shape[1] % groups)
        return kiln__error(m->ctx, KILN_ERROR_SHAPE,
                           "%s: %lld input channels do not split into %d "
                           "groups", call, (long long)shape[1], groups);
    int first = m->nparams;
    kiln_node *w = new_param(m, call, "weight", 4,
                             (int64_t[]){filters, shape[1] / groups, kh, kw},
                             KILN_INIT_XAVIER_UNIFORM, 0, 0, 1);
    kiln_node *b = w ? new_param(m, call, "bias", 1, &filters,
                                 KILN_INIT_ZEROS, 0, 0, 1)
                     : NULL;
    kiln_node *y = b ? kiln_g_conv2d(x, w, b, &l->conv) : NULL;
    return finish_layer(m, first, y ? activate(y, a) : NULL);
}

static kiln_status pool(kiln_model *m, const char *call, model_layer_kind kind,
                        const kiln_pool2d_params *p)
{
    kiln_status st = begin_layer(m, call);
    if (st != KILN_OK)
        return st;
    kiln_node *x;
    model_layer *l = prepare(m, kind, &x);
    if ((st = need_images(m, call, x)) != KILN_OK)
        return st;
    /* NULL: Keras's default 2x2 window with stride 2. */
    l->pool = p ? *p : (kiln_pool2d_params){.kernel = {2, 2}};
    kiln_node *y = kind == LAYER_MAX_POOL2D ? kiln_g_max_pool2d(x, &l->pool)
                                            : kiln_g_avg_pool2d(x, &l->pool);
    return finish_layer(m, m->nparams, y);
}

kiln_status kiln_model_max_pool2d(kiln_model *m, const kiln_pool2d_params *p)
{
    return pool(m, "kiln_model_max_pool2d", LAYER_MAX_POOL2D, p);
}

kiln_status kiln_model_avg_pool2d(kiln_model *m, const kiln_pool2d_params *p)
{
    return pool(m, "kiln_model_avg_pool2d", LAYER_AVG_POOL2D, p);
}

kiln_status kiln_model_flatten(kiln_model *m)
{
    kiln_status st = begin_layer(m, "kiln_model_flatten");
    if (st != KILN_OK)
        return st;
    kiln_node *x;
    prepare(m, LAYER_FLATTEN, &x);
    kiln_node *y = kiln_node_ndim(x) > 2 ? kiln_g_flatten(x, 1, -1) : x;
    return finish_layer(m, m->nparams, y);
}

/* A stream of its own for each dropout layer (splitmix64 of seed and
 * layer), so two dropout layers never share masks. */
static uint64_t layer_seed(uint64_t seed, int layer)
{
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (uint64_t)(layer + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

kiln_status kiln_model_dropout(kiln_model *m, double rate)
{
    const char *call = "kiln_model_dropout";
    kiln_status st = begin_layer(m, call);
    if (st != KILN_OK)
        return st;
    if (!(rate >= 0 && rate < 1))
        return kiln__error(m->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: rate %g is outside [0, 1)", call, rate);
    kiln_node *x;
    model_layer *l = prepare(m, LAYER_DROPOUT, &x);
    l->rate = rate;
    kiln_node *y = kiln_g_dropout(x, rate, layer_seed(m->seed, m->nlayers));
    return finish_layer(m, m->nparams, y);
}

kiln_status kiln_model_batch_norm(kiln_model *m)
{
    const char *call = "kiln_model_batch_norm";
    kiln_status st = begin_layer(m, call);
    if (st != KILN_OK)
        return st;
    kiln_node *x;
    prepare(m, LAYER_BATCH_NORM, &x);
    int64_t shape[KILN_MAX_DIMS];
    int nd = kiln_node_shape(x, shape);
    char buf[96];
    if (nd < 2 || shape[1] < 1)
        return kiln__error(m->ctx, KILN_ERROR_SHAPE,
                           "%s: needs samples of at least one dimension, "
                           "layer %d gives %s", call, m->nlayers - 1,
                           sample_string(x, buf, sizeof buf));
    int64_t c = shape[1];
    int first = m->nparams;
    kiln_node *gamma = new_param(m, call, "gamma", 1, &c, KILN_INIT_CONSTANT,
                                 1, 0, 1);
    kiln_node *beta = gamma ? new_param(m, call, "beta", 1, &c,
                                        KILN_INIT_ZEROS, 0, 0, 1)
                            : NULL;
    kiln_node *rm = beta ? new_param(m, call, "running_mean", 1, &c,
                                     KILN_INIT_ZEROS, 0, 0, 0)
                         : NULL;
    kiln_node *rv = rm ? new_param(m, call, "running_var", 1, &c,
                                   KILN_INIT_CONSTANT, 1, 0, 0)
                       : NULL;
    kiln_node *y = rv ? kiln_g_batch_norm(x, gamma, beta, rm, rv, 0.1, 1e-5)
                      : NULL;
    return finish_layer(m, first, y);
}

kiln_status kiln_model_embedding(kiln_model *m, int64_t vocab, int64_t dim)
{
    const char *call = "kiln_model_embedding";
    kiln_status st = begin_layer(m, call);
    if (st != KILN_OK)
        return st;
    if (vocab < 1 || dim < 1)
        return kiln__error(m->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: vocab %lld and dim %lld (both need >= 1)",
                           call, (long long)vocab, (long long)dim);
    kiln_node *x;
    model_layer *l = prepare(m, LAYER_EMBEDDING, &x);
    l->vocab = vocab;
    l->units = dim;
    if (kiln_node_ndim(x) + 1 > KILN_MAX_DIMS)
        return kiln__error(m->ctx, KILN_ERROR_SHAPE,
                           "%s: %d-D samples leave no room for the row "
                           "dimension", call, kiln_node_ndim(x) - 1);
    int first = m->nparams;
    kiln_node *table = new_param(m, call, "table", 2,
                                 (int64_t[]){vocab, dim}, KILN_INIT_UNIFORM,
                                 -0.05, 0.05, 1);
    /* Data sets hold floats; indices are exact integers in them. */
    kiln_node *y = table ? kiln_g_embedding(table, kiln_g_cast(x, KILN_I32))
                         : NULL;
    return finish_layer(m, first, y);
}

kiln_status kiln_model_rnn(kiln_model *m, kiln_rnn_kind kind, int64_t units,
                           int return_sequences)
{
    const char *call = "kiln_model_rnn";
    kiln_status st = begin_layer(m, call);
    if (st != KILN_OK)
        return st;
    if ((unsigned)kind > KILN_GRU || units < 1)
        return kiln__error(m->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: kind %d with %lld units (kinds 0-3, units "
                           ">= 1)", call, (int)kind, (long long)units);
    kiln_node *x;
    model_layer *l = prepare(m, LAYER_RNN, &x);
    l->rnn = kind;
    l->units = units;
    l->return_sequences = return_sequences != 0;
    int64_t shape[KILN_MAX_DIMS];
    int nd = kiln_node_shape(x, shape);
    char buf[96];
    if (nd != 3 || shape[1] < 1)
        return kiln__error(m->ctx, KILN_ERROR_SHAPE,
                           "%s: needs [T, features] samples, layer %d gives "
                           "%s", call, m->nlayers - 1,
                           sample_string(x, buf, sizeof buf));
    int64_t gates = kind == KILN_LSTM ? 4 : kind == KILN_GRU ? 3 : 1;
    int64_t gh = gates * units;
    int first = m->nparams;
    kiln_node *w_ih = new_param(m, call, "w_ih", 2, (int64_t[]){gh, shape[2]},
                                KILN_INIT_XAVIER_UNIFORM, 0, 0, 1);
    kiln_node *w_hh = w_ih ? new_param(m, call, "w_hh", 2,
                                       (int64_t[]){gh, units},
                                       KILN_INIT_XAVIER_UNIFORM, 0, 0, 1)
                           : NULL;
    kiln_node *b_ih = w_hh ? new_param(m, call, "b_ih", 1, &gh,
                                       KILN_INIT_ZEROS, 0, 0, 1)
                           : NULL;
    kiln_node *b_hh = b_ih ? new_param(m, call, "b_hh", 1, &gh,
                                       KILN_INIT_ZEROS, 0, 0, 1)
                           : NULL;
    kiln_node *y = b_hh ? kiln_g_rnn(x, NULL, NULL, w_ih, w_hh, b_ih, b_hh,
                                     kind, 1)
                        : NULL;
    if (y && !l->return_sequences) /* the last step: [N, 1, H] -> [N, H] */
        y = kiln_g_flatten(kiln_g_slice(y, 1, shape[1] - 1, shape[1], 1), 1,
                           2);
    return finish_layer(m, first, y);
}

kiln_status kiln_model_activation(kiln_model *m, kiln_activation a)
{
    const char *call = "kiln_model_activation";
    kiln_status st = begin_layer(m, call);
    if (st != KILN_OK || (st = check_activation(m, call, a)) != KILN_OK)
        return st;
    kiln_node *x;
    model_layer *l = prepare(m, LAYER_ACTIVATION, &x);
    l->act = a;
    return finish_layer(m, m->nparams, activate(x, a));
}

/* The joins: the current output with layer @from's. */
static kiln_status join(kiln_model *m, const char *call, model_layer_kind kind,
                        int from)
{
    kiln_status st = begin_layer(m, call);
    if (st != KILN_OK)
        return st;
    if (from < 0 || from >= m->nlayers)
        return kiln__error(m->ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: layer %d does not exist (the model has %d "
                           "layers, 0 to %d)", call, from, m->nlayers,
                           m->nlayers - 1);
    kiln_node *x;
    model_layer *l = prepare(m, kind, &x);
    l->from = from;
    kiln_node *other = m->layers[from].out;
    int64_t a[KILN_MAX_DIMS], b[KILN_MAX_DIMS];
    int na = kiln_node_shape(x, a), nb = kiln_node_shape(other, b);
    int axis = na == 4 ? 1 : na - 1; /* channels of images, else features */
    int same = na == nb;
    for (int d = 1; same && d < na; d++)
        same = a[d] == b[d] || (kind == LAYER_CONCAT && d == axis);
    if (!same) {
        char sa[96], sb[96];
        return kiln__error(m->ctx, KILN_ERROR_SHAPE,
                           "%s: the current output %s and layer %d's %s %s",
                           call, sample_string(x, sa, sizeof sa), from,
                           sample_string(other, sb, sizeof sb),
                           kind == LAYER_CONCAT
                               ? "differ beyond the joined axis"
                               : "differ");
    }
    kiln_node *y = kind == LAYER_CONCAT
                       ? kiln_g_concat((kiln_node *[]){x, other}, 2, axis)
                       : kiln_g_add(x, other);
    return finish_layer(m, m->nparams, y);
}

kiln_status kiln_model_residual_add(kiln_model *m, int from)
{
    return join(m, "kiln_model_residual_add", LAYER_RESIDUAL_ADD, from);
}

kiln_status kiln_model_concat(kiln_model *m, int from)
{
    return join(m, "kiln_model_concat", LAYER_CONCAT, from);
}

/* ---- compile ------------------------------------------------------------------ */

/* Predicted classes i32 [N] of the output, or NULL (no classes: an
 * output that is neither one value nor a vector per sample). */
static kiln_node *predicted_class(kiln_model *m, kiln_node *out)
{
    int64_t count = model__sample_numel(out);
    if (count == 1 && m->loss != KILN_LOSS_SOFTMAX_XENT) {
        /* One output: a logit above 0 or a value above 0.5 is class 1. */
        double threshold = m->loss == KILN_LOSS_MSE ? 0.5 : 0.0;
        kiln_node *above = kiln_g_compare(out, kiln_g_scalar(m->g, m->dtype,
                                                             threshold),
                                          KILN_GT);
        return kiln_g_reshape(kiln_g_cast(above, KILN_I32), 1,
                              (int64_t[]){-1});
    }
    if (kiln_node_ndim(out) == 2)
        return kiln_g_argmax(out, 1, 0);
    return NULL;
}

kiln_status kiln_model_compile(kiln_model *m, kiln_loss loss,
                               const kiln_optimizer_config *opt)
{
    const char *call = "kiln_model_compile";
    if (!m)
        return KILN_ERROR_INVALID_ARGUMENT;
    kiln_context *ctx = m->ctx;
    if (kiln_status_of(ctx) != KILN_OK)
        return kiln_status_of(ctx);
    if ((unsigned)loss > KILN_LOSS_MSE)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: unknown loss %d", call, (int)loss);
    if (m->nlayers == 0)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           "%s: the model has no layers", call);
    kiln_node *out = model__output(m);
    int64_t shape[KILN_MAX_DIMS];
    int nd = kiln_node_shape(out, shape);
    char buf[96];
    if (loss == KILN_LOSS_SOFTMAX_XENT && (nd != 2 || shape[1] < 2))
        return kiln__error(ctx, KILN_ERROR_SHAPE,
                           "%s: the softmax cross-entropy needs logits of "
                           "C >= 2 classes per sample, the last layer gives "
                           "%s", call, sample_string(out, buf, sizeof buf));
    drop_compiled(m);
    kiln_optimizer_config cfg = opt ? *opt
                                    : (kiln_optimizer_config){
                                          .kind = KILN_OPT_ADAM};
    m->loss = loss;
    m->opt_cfg = cfg;
    m->labels = kiln_g_input(m->g, "labels", KILN_I32, 1, (int64_t[]){-1});
    if (loss == KILN_LOSS_SOFTMAX_XENT) {
        m->targets = NULL;
        m->loss_node = kiln_g_softmax_cross_entropy(out, m->labels);
        m->probs = kiln_g_softmax(out, 1);
    } else {
        m->targets = kiln_g_input(m->g, "targets", m->dtype, nd, shape);
        m->loss_node = loss == KILN_LOSS_MSE
                           ? kiln_g_mse_loss(out, m->targets, 0)
                           : kiln_g_sigmoid_cross_entropy(out, m->targets);
        m->probs = loss == KILN_LOSS_MSE ? out : kiln_g_sigmoid(out);
    }
    m->pred_class = predicted_class(m, out);
    m->correct = m->pred_class
                     ? kiln_g_sum(kiln_g_compare(m->pred_class, m->labels,
                                                 KILN_EQ),
                                  0, NULL, 0)
                     : NULL;
    if (!m->loss_node || !m->probs || (m->pred_class && !m->correct))
        return kiln_status_of(ctx) != KILN_OK ? kiln_status_of(ctx)
                                              : KILN_ERROR_INVALID_ARGUMENT;

    m->ntrain = 0;
    for (int i = 0; i < m->nparams; i++)
        m->ntrain += m->params[i].trainable;
    int n = m->ntrain;
    kiln_node **vars = calloc((size_t)(n ? n : 1), sizeof *vars);
    m->grads = calloc((size_t)(n ? n : 1), sizeof *m->grads);
    m->train_values = calloc((size_t)(n ? n : 1), sizeof *m->train_values);
    if (!vars || !m->grads || !m->train_values) {
        free(vars);
        drop_compiled(m);
        return kiln__error(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                           "%s: out of host memory", call);
    }
    for (int i = 0, k = 0; i < m->nparams; i++)
        if (m->params[i].trainable) {
            vars[k] = m->params[i].var;
            m->train_values[k++] = kiln_g_variable_tensor(m->params[i].var);
        }
    kiln_status st = n ? kiln_g_gradients(m->loss_node, n, vars, m->grads)
                       : KILN_OK;
    free(vars);
    if (st == KILN_OK) {
        m->opt = kiln_optimizer_new(ctx, &cfg);
        st = m->opt ? KILN_OK : kiln_status_of(ctx);
    }
    if (st != KILN_OK) {
        drop_compiled(m);
        return st;
    }
    m->compiled = 1;
    return KILN_OK;
}

/* ---- summary and parameters ----------------------------------------------------- */

static int64_t node_numel(const kiln_node *n)
{
    int64_t shape[KILN_MAX_DIMS];
    int nd = kiln_node_shape(n, shape);
    int64_t count = 1;
    for (int d = 0; d < nd; d++)
        count *= shape[d];
    return count;
}

static const char *const loss_names[] = {"softmax_cross_entropy",
                                         "sigmoid_cross_entropy", "mse"};

void kiln_model_summary(const kiln_model *m, FILE *out)
{
    if (!m || !out)
        return;
    char shape[96], kind[64];
    fprintf(out, "%-6s %-26s %-20s %12s\n", "layer", "type", "output shape",
            "parameters");
    fprintf(out, "%-6s %-26s %-20s %12s\n", "", "input",
            sample_string(m->input, shape, sizeof shape), "0");
    int64_t total = 0, trainable = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const model_layer *l = &m->layers[i];
        int64_t count = 0;
        for (int p = l->first_param; p < l->first_param + l->nparams; p++) {
            int64_t k = node_numel(m->params[p].var);
            count += k;
            if (m->params[p].trainable)
                trainable += k;
        }
        total += count;
        if (l->act != KILN_ACT_NONE)
            snprintf(kind, sizeof kind, "%s (%s)", kind_names[l->kind],
                     model__activation_name(l->act));
        else if (l->kind == LAYER_RESIDUAL_ADD || l->kind == LAYER_CONCAT)
            snprintf(kind, sizeof kind, "%s (layer %d)", kind_names[l->kind],
                     l->from);
        else
            snprintf(kind, sizeof kind, "%s", kind_names[l->kind]);
        fprintf(out, "%-6d %-26s %-20s %12lld\n", i, kind,
                sample_string(l->out, shape, sizeof shape), (long long)count);
    }
    fprintf(out, "parameters: %lld (trainable %lld, non-trainable %lld), "
                 "%s\n",
            (long long)total, (long long)trainable,
            (long long)(total - trainable), kiln_dtype_name(m->dtype));
    if (m->compiled)
        fprintf(out, "loss: %s\n", loss_names[m->loss]);
    else
        fprintf(out, "not compiled\n");
}

int kiln_model_param_count(const kiln_model *m)
{
    return m ? m->nparams : 0;
}

const char *kiln_model_param_name(const kiln_model *m, int i)
{
    return m && i >= 0 && i < m->nparams ? m->params[i].name : NULL;
}

kiln_tensor *kiln_model_param(kiln_model *m, const char *name)
{
    if (!m)
        return NULL;
    int i = model__param_index(m, name);
    if (i < 0)
        return kiln__error_null(m->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                "kiln_model_param: the model has no "
                                "parameter '%s'", name ? name : "(null)");
    return kiln_g_variable_tensor(m->params[i].var);
}

int64_t kiln_model_global_step(const kiln_model *m)
{
    return m ? m->global_step : 0;
}
