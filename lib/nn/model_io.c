/*
 * model_io.c - model checkpoints (kiln_model_save / kiln_model_load) and
 * the model description they carry.
 *
 * A checkpoint is one safetensors file: every parameter under its name
 * ("layer3.dense.weight"), the optimizer's state per trainable parameter
 * ("optimizer.layer3.dense.weight.m"), and string metadata: "kiln.model"
 * (the description as JSON: dtype, input shape, layers and their
 * hyper-parameters, loss, optimizer config) and the training position
 * ("kiln.global_step", "kiln.epoch", "kiln.batch", "kiln.train_count",
 * "kiln.optimizer_steps", "kiln.seed").  Plain safetensors files without
 * the metadata load too, checked by names, shapes and dtypes alone.
 *
 * Loading is all or nothing: the file's description is compared with the
 * model's and every tensor is read into a temporary and checked before
 * anything of the model changes.  The optimizer is rebuilt aside and only
 * swapped in at the end.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "nn/model.h"

#define SAVE_CALL "kiln_model_save"
#define LOAD_CALL "kiln_model_load"
#define FORMAT_VERSION 1

/* ---- the description --------------------------------------------------------- */

/* A double in JSON whatever LC_NUMERIC says (printf would write "0,5"
 * under a comma locale). */
static void put_double(kiln_buf *b, double v)
{
    char text[64];
    snprintf(text, sizeof text, "%.17g", v);
    for (char *c = text; *c; c++)
        if (*c == ',')
            *c = '.';
    kiln__buf_add(b, text, strlen(text));
}

static void put_pair(kiln_buf *b, const char *key, const int *v)
{
    kiln__buf_printf(b, ", \"%s\": [%d, %d]", key, v[0], v[1]);
}

static const char *mode_name(kiln_padding_mode mode)
{
    return mode == KILN_PAD_SAME    ? "same"
           : mode == KILN_PAD_VALID ? "valid"
                                    : "explicit";
}

static const char *const rnn_names[] = {"rnn_tanh", "rnn_relu", "lstm",
                                        "gru"};
static const char *const loss_names[] = {"softmax_cross_entropy",
                                         "sigmoid_cross_entropy", "mse"};
static const char *const optimizer_names[] = {
    "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw",
    "adadelta"};

static void describe_layer(kiln_buf *b, const model_layer *l)
{
    kiln__buf_printf(b, "{\"type\": \"%s\"", model__kind_name(l->kind));
    switch (l->kind) {
    case LAYER_DENSE:
        kiln__buf_printf(b, ", \"units\": %lld", (long long)l->units);
        break;
    case LAYER_CONV2D: {
        const kiln_conv2d_params *c = &l->conv;
        kiln__buf_printf(b, ", \"filters\": %lld", (long long)l->units);
        put_pair(b, "kernel", l->kernel);
        /* Zero fields mean their defaults: written as the values used. */
        int stride[2] = {c->stride[0] ? c->stride[0] : 1,
                         c->stride[1] ? c->stride[1] : 1};
        int dil[2] = {c->dilation[0] ? c->dilation[0] : 1,
                      c->dilation[1] ? c->dilation[1] : 1};
        put_pair(b, "stride", stride);
        put_pair(b, "padding", c->padding);
        put_pair(b, "dilation", dil);
        kiln__buf_printf(b, ", \"groups\": %d, \"mode\": \"%s\"",
                         c->groups ? c->groups : 1, mode_name(c->mode));
        break;
    }
    case LAYER_MAX_POOL2D:
    case LAYER_AVG_POOL2D: {
        const kiln_pool2d_params *p = &l->pool;
        int stride[2] = {p->stride[0] ? p->stride[0] : p->kernel[0],
                         p->stride[1] ? p->stride[1] : p->kernel[1]};
        put_pair(b, "kernel", p->kernel);
        put_pair(b, "stride", stride);
        put_pair(b, "padding", p->padding);
        kiln__buf_printf(b, ", \"mode\": \"%s\"", mode_name(p->mode));
        if (l->kind == LAYER_AVG_POOL2D)
            kiln__buf_printf(b, ", \"count_include_pad\": %d",
                             p->count_include_pad != 0);
        break;
    }
    case LAYER_DROPOUT:
        kiln__buf_printf(b, ", \"rate\": ");
        put_double(b, l->rate);
        break;
    case LAYER_EMBEDDING:
        kiln__buf_printf(b, ", \"vocab\": %lld, \"dim\": %lld",
                         (long long)l->vocab, (long long)l->units);
        break;
    case LAYER_RNN:
        kiln__buf_printf(b, ", \"cell\": \"%s\", \"units\": %lld, "
                            "\"return_sequences\": %d",
                         rnn_names[l->rnn], (long long)l->units,
                         l->return_sequences);
        break;
    case LAYER_RESIDUAL_ADD:
    case LAYER_CONCAT:
        kiln__buf_printf(b, ", \"from\": %d", l->from);
        break;
    default:
        break;
    }
    if (l->kind == LAYER_DENSE || l->kind == LAYER_CONV2D ||
        l->kind == LAYER_ACTIVATION)
        kiln__buf_printf(b, ", \"activation\": \"%s\"",
                         model__activation_name(l->act));
    kiln__buf_add(b, "}", 1);
}

char *model__describe(const kiln_model *m, const char *call)
{
    kiln_buf b = {0};
    kiln__buf_printf(&b, "{\"format\": \"kiln.model\", \"version\": %d, "
                         "\"dtype\": \"%s\", \"input\": [",
                     FORMAT_VERSION, kiln_dtype_name(m->dtype));
    for (int d = 0; d < m->in_ndim; d++)
        kiln__buf_printf(&b, "%s%lld", d ? ", " : "",
                         (long long)m->in_shape[d]);
    kiln__buf_add(&b, "], \"layers\": [", 14);
    for (int i = 0; i < m->nlayers; i++) {
        if (i)
            kiln__buf_add(&b, ", ", 2);
        describe_layer(&b, &m->layers[i]);
    }
    kiln__buf_add(&b, "]", 1);
    if (m->compiled) {
        const kiln_optimizer_config *c = &m->opt_cfg;
        kiln__buf_printf(&b, ", \"loss\": \"%s\", \"optimizer\": {\"kind\": "
                             "\"%s\"",
                         loss_names[m->loss], optimizer_names[c->kind]);
        /* As configured: 0 means the optimizer's default. */
        const char *keys[] = {"lr", "momentum", "beta1", "beta2", "rho",
                              "eps", "weight_decay"};
        double values[] = {c->lr, c->momentum, c->beta1, c->beta2, c->rho,
                           c->eps, c->weight_decay};
        for (int k = 0; k < 7; k++) {
            kiln__buf_printf(&b, ", \"%s\": ", keys[k]);
            put_double(&b, values[k]);
        }
        kiln__buf_printf(&b, ", \"ewa\": %d}", c->ewa != 0);
    }
    kiln__buf_add(&b, "}", 2); /* with the terminating NUL */
    if (b.failed) {
        kiln__buf_free(&b);
        return kiln__error_null(m->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                "%s: out of host memory", call);
    }
    return b.data;
}

/* ---- optimizer state names --------------------------------------------------- */

/* Names of the state tensors of an optimizer kind, in kiln_optimizer_state
 * order (kernels_optimizer.h). */
static const char *state_role(kiln_optimizer_kind kind, int i)
{
    switch (kind) {
    case KILN_OPT_ADAM:
    case KILN_OPT_ADAMW: return i ? "v" : "m";
    case KILN_OPT_ADADELTA: return i ? "d" : "s";
    case KILN_OPT_ADAGRAD:
    case KILN_OPT_RMSPROP: return "s";
    default: return "v"; /* momentum, Nesterov: the velocity */
    }
}

/* How many state tensors the compiled model's optimizer keeps per
 * parameter (0 when not compiled or SGD). */
static int state_count(kiln_model *m)
{
    if (!m->compiled || m->ntrain == 0)
        return 0;
    kiln_tensor *unused[2];
    return kiln_optimizer_state(m->opt, m->train_values[0], unused, 2);
}

static void state_name(char *buf, size_t size, const kiln_model *m, int k,
                       int i)
{
    /* The k-th trainable parameter's name. */
    const char *pname = "";
    for (int p = 0, seen = 0; p < m->nparams; p++)
        if (m->params[p].trainable && seen++ == k) {
            pname = m->params[p].name;
            break;
        }
    snprintf(buf, size, "optimizer.%s.%s", pname,
             state_role(m->opt_cfg.kind, i));
}

/* ---- save ------------------------------------------------------------------------- */

kiln_status kiln_model_save(kiln_model *m, const char *path)
{
    if (!m)
        return KILN_ERROR_INVALID_ARGUMENT;
    kiln_context *ctx = m->ctx;
    if (kiln_status_of(ctx) != KILN_OK)
        return kiln_status_of(ctx);
    if (!path)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           SAVE_CALL ": path is NULL");
    int nstate = state_count(m);
    int total = m->nparams + nstate * m->ntrain;
    const char **names = calloc((size_t)(total ? total : 1), sizeof *names);
    int nnames = nstate * m->ntrain;
    char (*state_names)[MODEL_PARAM_NAME_MAX + 32] =
        calloc((size_t)(nnames > 0 ? nnames : 1), sizeof *state_names);
    kiln_tensor **tensors = calloc((size_t)(total ? total : 1),
                                   sizeof *tensors);
    kiln_tensor **zeros = calloc((size_t)(total ? total : 1), sizeof *zeros);
    char *desc = model__describe(m, SAVE_CALL);
    kiln_status st = KILN_OK;
    if (!names || !state_names || !tensors || !zeros || !desc)
        st = desc ? kiln__error(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                SAVE_CALL ": out of host memory")
                  : kiln_status_of(ctx);
    int n = 0;
    for (int i = 0; st == KILN_OK && i < m->nparams; i++, n++) {
        names[n] = m->params[i].name;
        tensors[n] = kiln_g_variable_tensor(m->params[i].var);
    }
    for (int k = 0; st == KILN_OK && k < m->ntrain && nstate; k++) {
        kiln_tensor *state[2] = {NULL, NULL};
        kiln_optimizer_state(m->opt, m->train_values[k], state, 2);
        for (int i = 0; i < nstate && st == KILN_OK; i++, n++) {
            char *name = state_names[k * nstate + i];
            state_name(name, MODEL_PARAM_NAME_MAX + 32, m, k, i);
            names[n] = name;
            /* Before the first step the state is zeros that do not exist
             * yet: write the zeros. */
            if (!state[i]) {
                kiln_tensor *p = m->train_values[k];
                int64_t shape[KILN_MAX_DIMS];
                int nd = kiln_tensor_shape(p, shape);
                zeros[n] = kiln_tensor_new(ctx, m->dtype, nd, shape);
                if (!zeros[n] || kiln_fill(zeros[n], 0.0) != KILN_OK)
                    st = kiln_status_of(ctx);
                state[i] = zeros[n];
            }
            tensors[n] = state[i];
        }
    }
    char steps[4][32];
    int64_t spe = m->batch > 0 ? (m->train_count + m->batch - 1) / m->batch
                               : 0;
    snprintf(steps[0], sizeof steps[0], "%lld", (long long)m->global_step);
    snprintf(steps[1], sizeof steps[1], "%lld",
             (long long)(spe ? m->global_step / spe : 0));
    snprintf(steps[2], sizeof steps[2], "%lld", (long long)m->batch);
    snprintf(steps[3], sizeof steps[3], "%lld", (long long)m->train_count);
    char opt_steps[32], seed[32];
    snprintf(opt_steps, sizeof opt_steps, "%lld",
             (long long)(m->compiled ? kiln_optimizer_steps(m->opt) : 0));
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)m->seed);
    const char *keys[] = {"kiln.model", "kiln.global_step", "kiln.epoch",
                          "kiln.batch", "kiln.train_count",
                          "kiln.optimizer_steps", "kiln.seed"};
    const char *values[] = {desc, steps[0], steps[1], steps[2], steps[3],
                            opt_steps, seed};
    if (st == KILN_OK)
        st = kiln_safetensors_save(ctx, path, n, names, tensors, 7, keys,
                                   values);
    for (int i = 0; zeros && i < total; i++)
        kiln_tensor_free(zeros[i]);
    free(zeros);
    free(tensors);
    free(state_names);
    free(names);
    free(desc);
    return st;
}

/* ---- load: comparing descriptions ---------------------------------------------- */

/* A JSON value back as compact text ("[3, 3]", "\"relu\"", "128"). */
static void json_text(kiln_buf *b, const kiln_json *v)
{
    switch (v->type) {
    case KILN_JSON_NULL: kiln__buf_add(b, "null", 4); break;
    case KILN_JSON_BOOL:
        kiln__buf_printf(b, "%s", v->boolean ? "true" : "false");
        break;
    case KILN_JSON_NUMBER: kiln__buf_printf(b, "%s", v->str); break;
    case KILN_JSON_STRING: kiln__buf_printf(b, "%s", v->str); break;
    case KILN_JSON_ARRAY:
    case KILN_JSON_OBJECT:
        kiln__buf_add(b, v->type == KILN_JSON_ARRAY ? "[" : "{", 1);
        for (int i = 0; i < v->n; i++) {
            if (i)
                kiln__buf_add(b, ", ", 2);
            if (v->type == KILN_JSON_OBJECT)
                kiln__buf_printf(b, "%s: ", v->keys[i]);
            json_text(b, &v->items[i]);
        }
        kiln__buf_add(b, v->type == KILN_JSON_ARRAY ? "]" : "}", 1);
        break;
    }
}

/* Compares the text of two values; *same receives the answer, the texts
 * land in @a and @b (freed by the caller). */
static int same_value(const kiln_json *x, const kiln_json *y, kiln_buf *a,
                      kiln_buf *b)
{
    json_text(a, x);
    json_text(b, y);
    kiln__buf_add(a, "", 1);
    kiln__buf_add(b, "", 1);
    return !a->failed && !b->failed && strcmp(a->data, b->data) == 0;
}

/* Keys that read as a count: "has 128 units", not "has units 128". */
static int is_count(const char *key)
{
    return strcmp(key, "units") == 0 || strcmp(key, "filters") == 0;
}

static kiln_status compare_layer(kiln_model *m, const char *path, int i,
                                 const kiln_json *mine,
                                 const kiln_json *theirs)
{
    const char *kind = model__kind_name(m->layers[i].kind);
    const kiln_json *type = kiln__json_get(theirs, "type");
    if (theirs->type != KILN_JSON_OBJECT || !type ||
        type->type != KILN_JSON_STRING)
        return kiln__error(m->ctx, KILN_ERROR_CORRUPT,
                           LOAD_CALL ": %s: layer %d of the description is "
                           "malformed", path, i);
    if (strcmp(type->str, kind) != 0)
        return kiln__error(m->ctx, KILN_ERROR_SHAPE,
                           LOAD_CALL ": layer %d is %s in the model, %.40s in "
                           "%s", i, kind, type->str, path);
    for (int k = 0; k < mine->n; k++) {
        const char *key = mine->keys[k];
        const kiln_json *v = kiln__json_get(theirs, key);
        if (!v)
            return kiln__error(m->ctx, KILN_ERROR_CORRUPT,
                               LOAD_CALL ": layer %d (%s) in %s has no "
                               "\"%s\"", i, kind, path, key);
        kiln_buf a = {0}, b = {0};
        int same = same_value(&mine->items[k], v, &a, &b);
        kiln_status st = KILN_OK;
        if (!same && is_count(key))
            st = kiln__error(m->ctx, KILN_ERROR_SHAPE,
                             LOAD_CALL ": layer %d (%s) has %s %s, the file "
                             "%.60s (%s)", i, kind, a.data ? a.data : "?",
                             key, b.data ? b.data : "?", path);
        else if (!same)
            st = kiln__error(m->ctx, KILN_ERROR_SHAPE,
                             LOAD_CALL ": layer %d (%s) has %s %s, the file "
                             "%.60s (%s)", i, kind, key,
                             a.data ? a.data : "?", b.data ? b.data : "?",
                             path);
        kiln__buf_free(&a);
        kiln__buf_free(&b);
        if (st != KILN_OK)
            return st;
    }
    return KILN_OK;
}

/* Checks the file's description against the model's: dtype, input,
 * layers; the optimizer kind when the file's state is to be loaded. */
static kiln_status compare_description(kiln_model *m, const char *path,
                                       const char *text, int with_optimizer)
{
    char err[160];
    kiln_json *theirs = kiln__json_parse(text, strlen(text), err, sizeof err);
    if (!theirs)
        return kiln__error(m->ctx, KILN_ERROR_CORRUPT,
                           LOAD_CALL ": %s: the model description "
                           "(kiln.model) is not JSON: %s", path, err);
    char *my_text = model__describe(m, LOAD_CALL);
    kiln_json *mine = my_text ? kiln__json_parse(my_text, strlen(my_text),
                                                 err, sizeof err)
                              : NULL;
    free(my_text);
    kiln_status st = KILN_OK;
    if (!mine) {
        kiln__json_free(theirs);
        return kiln_status_of(m->ctx) != KILN_OK
                   ? kiln_status_of(m->ctx)
                   : kiln__error(m->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                                 LOAD_CALL ": out of host memory");
    }
    const kiln_json *layers = kiln__json_get(theirs, "layers");
    const char *fields[] = {"dtype", "input"};
    for (int f = 0; st == KILN_OK && f < 2; f++) {
        const kiln_json *v = kiln__json_get(theirs, fields[f]);
        kiln_buf a = {0}, b = {0};
        if (!v)
            st = kiln__error(m->ctx, KILN_ERROR_CORRUPT,
                             LOAD_CALL ": %s: the model description has no "
                             "\"%s\"", path, fields[f]);
        else if (!same_value(kiln__json_get(mine, fields[f]), v, &a, &b))
            st = kiln__error(m->ctx, f ? KILN_ERROR_SHAPE : KILN_ERROR_DTYPE,
                             LOAD_CALL ": the model's %s is %s, the file's "
                             "%s (%s)", f ? "input" : "dtype",
                             a.data ? a.data : "?", b.data ? b.data : "?",
                             path);
        kiln__buf_free(&a);
        kiln__buf_free(&b);
    }
    if (st == KILN_OK && (!layers || layers->type != KILN_JSON_ARRAY))
        st = kiln__error(m->ctx, KILN_ERROR_CORRUPT,
                         LOAD_CALL ": %s: the model description has no "
                         "layer list", path);
    if (st == KILN_OK && layers->n != m->nlayers)
        st = kiln__error(m->ctx, KILN_ERROR_SHAPE,
                         LOAD_CALL ": the model has %d layers, %s has %d",
                         m->nlayers, path, layers->n);
    const kiln_json *my_layers = kiln__json_get(mine, "layers");
    for (int i = 0; st == KILN_OK && i < m->nlayers; i++)
        st = compare_layer(m, path, i, &my_layers->items[i],
                           &layers->items[i]);
    if (st == KILN_OK && with_optimizer) {
        const kiln_json *o = kiln__json_get(theirs, "optimizer");
        const kiln_json *kind = o ? kiln__json_get(o, "kind") : NULL;
        const char *want = optimizer_names[m->opt_cfg.kind];
        if (kind && kind->type == KILN_JSON_STRING &&
            strcmp(kind->str, want) != 0)
            st = kiln__error(m->ctx, KILN_ERROR_INVALID_ARGUMENT,
                             LOAD_CALL ": the model's optimizer is %s, the "
                             "file's %.40s, whose state does not fit (%s)",
                             want, kind->str, path);
    }
    kiln__json_free(mine);
    kiln__json_free(theirs);
    return st;
}

/* ---- load -------------------------------------------------------------------------- */

static int file_has(const kiln_tensor_file *f, const char *name)
{
    for (int i = 0; i < kiln_tensor_file_count(f); i++)
        if (strcmp(kiln_tensor_file_name(f, i), name) == 0)
            return 1;
    return 0;
}

/* Reads entry @name into a new tensor and checks it against @like (the
 * model's tensor); NULL with an error naming @what otherwise. */
static kiln_tensor *load_checked(kiln_model *m, kiln_tensor_file *f,
                                 const char *path, const char *name,
                                 kiln_tensor *like, const char *what)
{
    char a[96], b[96];
    int64_t shape[KILN_MAX_DIMS];
    int nd = kiln_tensor_shape(like, shape);
    if (!file_has(f, name))
        return kiln__error_null(m->ctx, KILN_ERROR_INVALID_ARGUMENT,
                                LOAD_CALL ": %s has no tensor \"%s\" (%s, %s "
                                "%s)", path, name, what,
                                kiln_dtype_name(m->dtype),
                                kiln__shape_string(nd, shape, a, sizeof a));
    kiln_tensor *t = kiln_tensor_file_load(f, name);
    if (!t)
        return NULL;
    int64_t got[KILN_MAX_DIMS];
    int gnd = kiln_tensor_shape(t, got);
    int same = gnd == nd && kiln_tensor_dtype(t) == m->dtype;
    for (int d = 0; same && d < nd; d++)
        same = got[d] == shape[d];
    if (!same) {
        kiln__error(m->ctx, KILN_ERROR_SHAPE,
                    LOAD_CALL ": \"%s\" (%s) is %s %s in the model, %s %s in "
                    "%s", name, what, kiln_dtype_name(m->dtype),
                    kiln__shape_string(nd, shape, a, sizeof a),
                    kiln_dtype_name(kiln_tensor_dtype(t)),
                    kiln__shape_string(gnd, got, b, sizeof b), path);
        kiln_tensor_free(t);
        return NULL;
    }
    return t;
}

/* A metadata integer >= 0, or 0 when absent; -1 when malformed. */
static int64_t meta_int(const kiln_tensor_file *f, const char *key)
{
    const char *v = kiln_tensor_file_meta(f, key);
    if (!v)
        return 0;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < 0)
        return -1;
    return x;
}

/* A fresh optimizer of the model's config whose state holds @state
 * ([ntrain * nstate], NULL: none in the file) and whose step count is
 * @steps.  The state tensors only exist after a first step, so one step of
 * learning rate 0 on zero gradients makes them (it leaves every parameter
 * as it is: p - 0 * finite = p), then they are overwritten. */
static kiln_optimizer *rebuilt_optimizer(kiln_model *m, kiln_tensor **state,
                                         int nstate, int64_t steps)
{
    kiln_optimizer *opt = kiln_optimizer_new(m->ctx, &m->opt_cfg);
    if (!opt)
        return NULL;
    kiln_status st = KILN_OK;
    if (state && nstate) {
        kiln_tensor **zeros = calloc((size_t)m->ntrain, sizeof *zeros);
        if (!zeros)
            st = kiln__error(m->ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                             LOAD_CALL ": out of host memory");
        for (int k = 0; st == KILN_OK && k < m->ntrain; k++) {
            int64_t shape[KILN_MAX_DIMS];
            int nd = kiln_tensor_shape(m->train_values[k], shape);
            zeros[k] = kiln_tensor_new(m->ctx, m->dtype, nd, shape);
            st = zeros[k] ? kiln_fill(zeros[k], 0.0) : kiln_status_of(m->ctx);
        }
        if (st == KILN_OK)
            st = kiln_optimizer_step(opt, m->ntrain, m->train_values, zeros,
                                     0.0);
        for (int k = 0; zeros && k < m->ntrain; k++)
            kiln_tensor_free(zeros[k]);
        free(zeros);
        for (int k = 0; st == KILN_OK && k < m->ntrain; k++) {
            kiln_tensor *mine[2] = {NULL, NULL};
            kiln_optimizer_state(opt, m->train_values[k], mine, 2);
            for (int i = 0; st == KILN_OK && i < nstate; i++)
                st = kiln_copy(mine[i], state[k * nstate + i]);
        }
    }
    if (st != KILN_OK) {
        kiln_optimizer_free(opt);
        return NULL;
    }
    kiln_optimizer_set_steps(opt, steps);
    return opt;
}

kiln_status kiln_model_load(kiln_model *m, const char *path)
{
    if (!m)
        return KILN_ERROR_INVALID_ARGUMENT;
    kiln_context *ctx = m->ctx;
    if (kiln_status_of(ctx) != KILN_OK)
        return kiln_status_of(ctx);
    if (!path)
        return kiln__error(ctx, KILN_ERROR_INVALID_ARGUMENT,
                           LOAD_CALL ": path is NULL");
    kiln_tensor_file *f = kiln_safetensors_open(ctx, path);
    if (!f)
        return kiln_status_of(ctx);

    /* Does the file hold optimizer state, and will it be loaded? */
    int file_opt = 0;
    for (int i = 0; i < kiln_tensor_file_count(f); i++)
        file_opt |= strncmp(kiln_tensor_file_name(f, i), "optimizer.", 10) ==
                    0;
    int nstate = state_count(m);
    int load_opt = file_opt && m->compiled;
    int64_t position[5] = {meta_int(f, "kiln.global_step"),
                           meta_int(f, "kiln.batch"),
                           meta_int(f, "kiln.train_count"),
                           meta_int(f, "kiln.optimizer_steps"),
                           meta_int(f, "kiln.epoch")};
    kiln_status st = KILN_OK;
    for (int i = 0; i < 5; i++)
        if (position[i] < 0)
            st = kiln__error(ctx, KILN_ERROR_CORRUPT,
                             LOAD_CALL ": %s: the training position in the "
                             "metadata is not a number >= 0", path);
    const char *desc = kiln_tensor_file_meta(f, "kiln.model");
    if (st == KILN_OK && desc)
        st = compare_description(m, path, desc, load_opt);

    /* Everything into temporaries first, checked. */
    int nopt = load_opt ? nstate * m->ntrain : 0;
    kiln_tensor **params = calloc((size_t)(m->nparams ? m->nparams : 1),
                                  sizeof *params);
    kiln_tensor **state = calloc((size_t)(nopt ? nopt : 1), sizeof *state);
    if (st == KILN_OK && (!params || !state))
        st = kiln__error(ctx, KILN_ERROR_OUT_OF_HOST_MEMORY,
                         LOAD_CALL ": out of host memory");
    for (int i = 0; st == KILN_OK && i < m->nparams; i++) {
        const model_param *p = &m->params[i];
        char what[MODEL_PARAM_NAME_MAX + 64];
        const char *role = strrchr(p->name, '.');
        snprintf(what, sizeof what, "layer %d (%s) %s", p->layer,
                 model__kind_name(m->layers[p->layer].kind),
                 role ? role + 1 : p->name);
        params[i] = load_checked(m, f, path, p->name,
                                 kiln_g_variable_tensor(p->var), what);
        if (!params[i])
            st = kiln_status_of(ctx);
    }
    for (int k = 0; st == KILN_OK && k < m->ntrain && nopt; k++)
        for (int i = 0; st == KILN_OK && i < nstate; i++) {
            char name[MODEL_PARAM_NAME_MAX + 32];
            state_name(name, sizeof name, m, k, i);
            state[k * nstate + i] = load_checked(m, f, path, name,
                                                 m->train_values[k],
                                                 "optimizer state");
            if (!state[k * nstate + i])
                st = kiln_status_of(ctx);
        }

    /* Commit: the optimizer aside first (it can still fail cleanly), then
     * the parameters. */
    kiln_optimizer *opt = NULL;
    if (st == KILN_OK && m->compiled) {
        opt = rebuilt_optimizer(m, load_opt ? state : NULL, nstate,
                                load_opt ? position[3] : 0);
        if (!opt)
            st = kiln_status_of(ctx);
    }
    for (int i = 0; st == KILN_OK && i < m->nparams; i++)
        st = kiln_copy(kiln_g_variable_tensor(m->params[i].var), params[i]);
    if (st == KILN_OK) {
        if (opt) {
            kiln_optimizer_free(m->opt);
            m->opt = opt;
            opt = NULL;
        }
        m->global_step = position[0];
        m->batch = position[1];
        m->train_count = position[2];
        const char *seed = kiln_tensor_file_meta(f, "kiln.seed");
        char *end = NULL;
        errno = 0;
        m->run_seed = seed ? strtoull(seed, &end, 10) : 0;
        m->run_seed_known = seed && !errno && end != seed && !*end;
    }
    kiln_optimizer_free(opt);
    for (int i = 0; params && i < m->nparams; i++)
        kiln_tensor_free(params[i]);
    for (int i = 0; state && i < nopt; i++)
        kiln_tensor_free(state[i]);
    free(params);
    free(state);
    kiln_tensor_file_close(f);
    return st;
}
