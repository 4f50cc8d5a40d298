/*
 * char-rnn - character-level recurrent networks (COURSE.md examples 17
 * and 18):
 *
 *   1. "hello": the alphabet h, e, l, o, one-hot encoded.  A many-to-many
 *      network reads h, e, l, l and learns each next character e, l, l, o
 *      (the second l needs the history: after "l" comes "l" or "o").  It is
 *      trained with each cell - SimpleRNN (tanh), LSTM and GRU - on Kiln's
 *      graph (kiln_g_rnn, autodiff, Adam); then, given "h", it writes
 *      "hello" by greedy decoding: the most likely next character is fed
 *      back in as the next input.
 *   2. A next-character generator on a text file (default: the GPL-3 text
 *      Debian ships under /usr/share/common-licenses): every 10-character
 *      window predicts the character that follows ("alice lear" -> "n").
 *      A SimpleRNN and an LSTM (embedding, recurrent layer, dense) are
 *      trained on the model API; each then writes text from a seed string,
 *      sampling every next character from softmax(logits / temperature)
 *      with kiln_sample_categorical.
 *
 * The text is lowercased and every run of white space becomes one space.
 * Writes loss.svg (both text models, training and validation loss per
 * epoch) into --out; --save writes the LSTM's checkpoint, --load starts the
 * LSTM from one.
 *
 * usage: char-rnn [--device SPEC] [--epochs 10] [--batch 128] [--lr 0.003]
 *                 [--seed 1] [--data TEXTFILE] [--limit CHARS] [--out DIR]
 *                 [--save FILE] [--load FILE] [--fast]
 * Exit status: 0 every cell wrote "hello" and both text models' loss fell,
 * 1 not, 2 an error.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"

#define WINDOW 10 /* characters a text model reads to predict the next */

static kiln_context *ctx;

/* ---- 1. "hello" on the graph ------------------------------------------- */

static const char hello_alphabet[] = "helo";

static int hello_index(char c)
{
    return (int)(strchr(hello_alphabet, c) - hello_alphabet);
}

/* A trainable variable of @shape filled by @kind. */
static kiln_node *variable(kiln_graph *g, const char *name, int ndim,
                           const int64_t *shape, kiln_init_kind kind,
                           uint64_t seed)
{
    kiln_tensor *t = kiln_tensor_new(ctx, KILN_F32, ndim, shape);
    kiln_init(t, kind, 0, 0, seed, 0);
    kiln_node *v = kiln_g_variable(g, name, t);
    kiln_tensor_free(t);
    return v;
}

/* An i32 [rows, cols] tensor from @v. */
static kiln_tensor *indices(int rows, int cols, const int32_t *v)
{
    return kiln_tensor_from_data(ctx, KILN_I32, 2, (int64_t[]){rows, cols},
                                 v, sizeof(int32_t) * (size_t)(rows * cols));
}

/*
 * Trains one cell kind on "hello" and decodes greedily from "h".  Writes
 * the generated word into @word (6 bytes); returns 0, or -1 on an error.
 */
static int hello(kiln_rnn_kind kind, const char *name, uint64_t seed,
                 char *word)
{
    enum { V = 4, H = 8, STEPS = 100 };
    int64_t G = kind == KILN_LSTM ? 4 : kind == KILN_GRU ? 3 : 1;
    kiln_graph *g = kiln_graph_new(ctx);

    /* One-hot encoding = looking rows up in the identity matrix. */
    float eye[V * V] = {0};
    for (int i = 0; i < V; i++)
        eye[i * V + i] = 1;
    kiln_tensor *t_eye = kiln_tensor_from_data(ctx, KILN_F32, 2,
                                               (int64_t[]){V, V}, eye,
                                               sizeof eye);
    kiln_node *one_hot = kiln_g_constant(g, t_eye);
    kiln_tensor_free(t_eye);

    /* One sequence of any length; its next characters as labels. */
    kiln_node *x = kiln_g_input(g, "chars", KILN_I32, 2, (int64_t[]){1, -1});
    kiln_node *labels = kiln_g_input(g, "next", KILN_I32, 1, (int64_t[]){-1});
    kiln_node *params[6] = {
        variable(g, "w_ih", 2, (int64_t[]){G * H, V},
                 KILN_INIT_XAVIER_UNIFORM, seed),
        variable(g, "w_hh", 2, (int64_t[]){G * H, H},
                 KILN_INIT_XAVIER_UNIFORM, seed + 1),
        variable(g, "b_ih", 1, (int64_t[]){G * H}, KILN_INIT_ZEROS, 0),
        variable(g, "b_hh", 1, (int64_t[]){G * H}, KILN_INIT_ZEROS, 0),
        variable(g, "w_out", 2, (int64_t[]){H, V}, KILN_INIT_XAVIER_UNIFORM,
                 seed + 2),
        variable(g, "b_out", 1, (int64_t[]){V}, KILN_INIT_ZEROS, 0),
    };
    kiln_node *seq = kiln_g_rnn(kiln_g_embedding(one_hot, x), NULL, NULL,
                                params[0], params[1], params[2], params[3],
                                kind, 1); /* [1, T, H] */
    kiln_node *logits = kiln_g_add(
        kiln_g_matmul(kiln_g_reshape(seq, 2, (int64_t[]){-1, H}), params[4]),
        params[5]); /* [T, V]: a score per character at every step */
    kiln_node *loss = kiln_g_softmax_cross_entropy(logits, labels);
    kiln_node *predicted = kiln_g_argmax(logits, 1, 0);
    kiln_node *grads[6];
    kiln_g_gradients(loss, 6, params, grads);
    kiln_optimizer *opt = kiln_optimizer_new(
        ctx, &(kiln_optimizer_config){.kind = KILN_OPT_ADAM, .lr = 0.05});

    int32_t in[4] = {0}, next[4] = {0};
    for (int t = 0; t < 4; t++) {
        in[t] = hello_index("hello"[t]);
        next[t] = hello_index("hello"[t + 1]);
    }
    kiln_tensor *t_in = indices(1, 4, in);
    kiln_tensor *t_next = kiln_tensor_from_data(ctx, KILN_I32, 1,
                                                (int64_t[]){4}, next,
                                                sizeof next);
    kiln_tensor *values[6];
    for (int i = 0; i < 6; i++)
        values[i] = kiln_g_variable_tensor(params[i]);
    kiln_feed feeds[2] = {{x, t_in}, {labels, t_next}};
    kiln_node *fetch[7] = {loss, grads[0], grads[1], grads[2], grads[3],
                           grads[4], grads[5]};
    float first = NAN, last = NAN;
    kiln_status st = kiln_status_of(ctx);
    for (int step = 0; st == KILN_OK && step < STEPS; step++) {
        kiln_tensor *out[7] = {NULL};
        st = kiln_graph_run(g, 2, feeds, 7, fetch, out);
        if (st == KILN_OK && (step == 0 || step == STEPS - 1))
            st = kiln_tensor_read(out[0], step ? &last : &first,
                                  sizeof first);
        if (st == KILN_OK)
            st = kiln_optimizer_step(opt, 6, values, out + 1, -1.0);
        for (int i = 0; i < 7; i++)
            kiln_tensor_free(out[i]);
    }

    /* Greedy decoding: start from "h", append the most likely next
     * character, run again on the longer sequence. */
    int32_t gen[5] = {hello_index('h')};
    for (int len = 1; st == KILN_OK && len < 5; len++) {
        kiln_tensor *t_gen = indices(1, len, gen);
        kiln_feed f = {x, t_gen};
        kiln_tensor *out = NULL;
        int32_t pred[5] = {0};
        st = kiln_graph_run(g, 1, &f, 1, &predicted, &out);
        if (st == KILN_OK)
            st = kiln_tensor_read(out, pred, sizeof(int32_t) * (size_t)len);
        gen[len] = pred[len - 1];
        kiln_tensor_free(out);
        kiln_tensor_free(t_gen);
    }
    for (int i = 0; i < 5; i++)
        word[i] = hello_alphabet[gen[i] & 3];
    word[5] = '\0';
    if (st == KILN_OK)
        printf("  %-16s loss %.4f -> %.6f in %d steps; from \"h\": \"%s\"\n",
               name, first, last, STEPS, word);
    kiln_tensor_free(t_in);
    kiln_tensor_free(t_next);
    kiln_optimizer_free(opt);
    kiln_graph_free(g);
    return st == KILN_OK ? 0 : -1;
}

/* ---- 2. a next-character generator on the model API ------------------- */

/* The file, lowercased, each run of white space one space; NULL on error. */
static char *read_text(const char *path, int64_t *length)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *text = malloc(cap);
    int c, space = 1; /* drops leading white space too */
    while (text && (c = fgetc(f)) != EOF) {
        if (isspace(c)) {
            if (space)
                continue;
            c = ' ';
            space = 1;
        } else {
            c = tolower(c);
            space = 0;
        }
        if (n + 1 >= cap) {
            char *bigger = realloc(text, cap *= 2);
            if (!bigger) {
                free(text);
                text = NULL;
                break;
            }
            text = bigger;
        }
        text[n++] = (char)c;
    }
    fclose(f);
    if (!text)
        return NULL;
    while (n && text[n - 1] == ' ')
        n--;
    text[n] = '\0';
    *length = (int64_t)n;
    return text;
}

/* The characters of the text, sorted: the model's classes. */
typedef struct alphabet {
    int size;
    char chars[256];
    int index[256];
} alphabet;

static void make_alphabet(const char *text, int64_t n, alphabet *a)
{
    int seen[256] = {0};
    for (int64_t i = 0; i < n; i++)
        seen[(unsigned char)text[i]] = 1;
    a->size = 0;
    for (int c = 0; c < 256; c++) {
        a->index[c] = seen[c] ? a->size : -1;
        if (seen[c])
            a->chars[a->size++] = (char)c;
    }
}

/* Every window of WINDOW characters (as indices) labelled with the next. */
static int windows(const char *text, int64_t n, const alphabet *a,
                   kiln_dataset *d)
{
    memset(d, 0, sizeof *d);
    d->count = n - WINDOW;
    d->ndim = 1;
    d->shape[0] = WINDOW;
    d->classes = a->size;
    d->x = malloc(sizeof *d->x * (size_t)(d->count * WINDOW));
    d->y = malloc(sizeof *d->y * (size_t)d->count);
    if (!d->x || !d->y)
        return -1;
    for (int64_t i = 0; i < d->count; i++) {
        for (int t = 0; t < WINDOW; t++)
            d->x[i * WINDOW + t] = (float)a->index[(unsigned char)text[i + t]];
        d->y[i] = a->index[(unsigned char)text[i + WINDOW]];
    }
    return 0;
}

/* Writes @count characters after the @seed string (WINDOW long), each
 * drawn from the model's next-character distribution at @temperature. */
static int generate(kiln_model *m, const alphabet *a, const char *seed,
                    int count, double temperature, uint64_t rng_seed)
{
    char *text = malloc((size_t)(WINDOW + count + 1));
    float window[WINDOW];
    kiln_dataset one = {.count = 1, .ndim = 1, .shape = {WINDOW},
                        .x = window, .classes = a->size};
    memcpy(text, seed, WINDOW);
    int ok = 1;
    for (int i = 0; ok && i < count; i++) {
        for (int t = 0; t < WINDOW; t++)
            window[t] = (float)a->index[(unsigned char)text[i + t]];
        /* predict gives probabilities; their log is a valid set of logits
         * (softmax(log p / T) = p^(1/T), renormalised). */
        kiln_tensor *p = kiln_model_predict(m, &one, 1);
        kiln_tensor *logits = kiln_log(p);
        kiln_tensor *drawn = kiln_sample_categorical(logits, temperature,
                                                     rng_seed, (uint64_t)i);
        int32_t c = 0;
        ok = drawn && kiln_tensor_read(drawn, &c, sizeof c) == KILN_OK;
        text[WINDOW + i] = a->chars[c >= 0 && c < a->size ? c : 0];
        kiln_tensor_free(drawn);
        kiln_tensor_free(logits);
        kiln_tensor_free(p);
    }
    text[WINDOW + count] = '\0';
    if (ok)
        printf("    T = %.1f: \"%.*s|%s\"\n", temperature, WINDOW, text,
               text + WINDOW);
    free(text);
    return ok ? 0 : -1;
}

/* Mean of @n step losses from @from. */
static double mean_of(const double *v, int64_t from, int64_t n)
{
    double s = 0;
    for (int64_t i = from; i < from + n; i++)
        s += v[i];
    return s / (double)n;
}

typedef struct text_result {
    kiln_history h;
    double first, last; /* mean loss of the first and last tenth of steps */
} text_result;

/* Builds, trains and samples one text model; 0 on success. */
static int text_model(const demo_args *a, kiln_rnn_kind kind,
                      const char *name, const kiln_dataset *train,
                      const alphabet *al, const char *seed_text,
                      int units, int sample_chars, text_result *r)
{
    kiln_model *m = kiln_model_new(ctx, KILN_F32, 1, (int64_t[]){WINDOW},
                                   a->seed);
    kiln_model_embedding(m, al->size, 32);
    kiln_model_rnn(m, kind, units, 0);               /* the last state   */
    kiln_model_dense(m, al->size, KILN_ACT_NONE);    /* next-char logits */
    kiln_optimizer_config opt = {.kind = KILN_OPT_ADAM, .lr = a->lr};
    if (kiln_model_compile(m, KILN_LOSS_SOFTMAX_XENT, &opt) != KILN_OK) {
        fprintf(stderr, "char-rnn: building %s: %s\n", name,
                kiln_error_message(ctx));
        kiln_model_free(m);
        return -1;
    }
    int is_lstm = kind == KILN_LSTM;
    printf("\n%s: embedding %d x 32 -> %s %d -> dense %d\n", name, al->size,
           name, units, al->size);
    if (is_lstm && a->load) {
        if (kiln_model_load(m, a->load) != KILN_OK) {
            fprintf(stderr, "char-rnn: --load %s: %s\n", a->load,
                    kiln_error_message(ctx));
            kiln_model_free(m);
            return -1;
        }
        printf("loaded %s\n", a->load);
    }
    kiln_fit_options fo = {.epochs = a->epochs, .batch = a->batch,
                           .shuffle = 1, .validation_split = 0.05};
    memset(&r->h, 0, sizeof r->h);
    if (kiln_model_fit(m, train, &fo, &r->h) != KILN_OK) {
        fprintf(stderr, "char-rnn: training %s: %s\n", name,
                kiln_error_message(ctx));
        kiln_model_free(m);
        return -1;
    }
    int64_t tenth = r->h.steps / 10 > 0 ? r->h.steps / 10 : 1;
    r->first = mean_of(r->h.step_loss, 0, tenth);
    r->last = mean_of(r->h.step_loss, r->h.steps - tenth, tenth);
    printf("  loss per epoch:");
    for (int64_t e = 0; e < r->h.epochs; e++)
        printf(" %.3f", r->h.loss[e]);
    printf("\n  validation: loss %.3f, next-character accuracy %.1f %%\n",
           r->h.val_loss[r->h.epochs - 1],
           100 * r->h.val_accuracy[r->h.epochs - 1]);
    printf("  samples from \"%.*s\":\n", WINDOW, seed_text);
    int rc = 0;
    for (int k = 0; rc == 0 && k < 2; k++)
        rc = generate(m, al, seed_text, sample_chars, k ? 1.0 : 0.5,
                      a->seed + (uint64_t)k);
    if (rc == 0 && is_lstm && a->save) {
        if (kiln_model_save(m, a->save) == KILN_OK)
            printf("saved %s\n", a->save);
        else
            fprintf(stderr, "char-rnn: --save: %s\n", kiln_error_message(ctx));
    }
    if (rc)
        fprintf(stderr, "char-rnn: sampling: %s\n", kiln_error_message(ctx));
    kiln_model_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    demo_args a = {.epochs = 10, .batch = 128, .lr = 3e-3, .seed = 1};
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress shows when piped too */
    if (!demo_parse_args(argc, argv, &a,
                         "usage: char-rnn [options]: \"hello\" with RNN, "
                         "LSTM and GRU cells, then a next-character\n"
                         "generator on a text file (--data FILE, default "
                         "/usr/share/common-licenses/GPL-3)\n"))
        return 2;
    int units = 128, sample_chars = 200;
    if (a.fast) { /* the few-second variant the tests run */
        a.epochs = 2;
        a.batch = 64;
        if (!a.limit)
            a.limit = 1200;
        units = 64;
        sample_chars = 40;
    }
    ctx = demo_open(&a, "char-rnn");
    if (!ctx)
        return 2;
    int ok = 1, error = 0;

    printf("1. \"hello\": input h e l l, targets e l l o (one-hot, 8 "
           "hidden units, Adam 0.05)\n");
    static const struct {
        kiln_rnn_kind kind;
        const char *name;
    } cells[3] = {{KILN_RNN_TANH, "SimpleRNN (tanh)"}, {KILN_LSTM, "LSTM"},
                  {KILN_GRU, "GRU"}};
    for (int i = 0; i < 3 && !error; i++) {
        char word[6];
        if (hello(cells[i].kind, cells[i].name, a.seed, word)) {
            fprintf(stderr, "char-rnn: %s: %s\n", cells[i].name,
                    kiln_error_message(ctx));
            error = 1;
        }
        ok &= !strcmp(word, "hello");
    }
    if (!error)
        printf("  \"hello\" from every cell: %s\n", ok ? "yes" : "NO");

    const char *path = a.data ? a.data : "/usr/share/common-licenses/GPL-3";
    int64_t n = 0;
    char *text = error ? NULL : read_text(path, &n);
    kiln_dataset train = {0};
    alphabet al;
    text_result res[2];
    memset(res, 0, sizeof res);
    if (!error && (!text || n < 4 * WINDOW)) {
        fprintf(stderr, "char-rnn: %s: not enough text\n", path);
        error = 1;
    }
    if (!error) {
        int64_t full = n;
        if (a.limit > WINDOW && a.limit < n)
            n = a.limit;
        make_alphabet(text, n, &al);
        printf("\n2. next character after %d: %s, %lld characters (of %lld), "
               "%d distinct\n", WINDOW, path, (long long)n, (long long)full,
               al.size);
        if (windows(text, n, &al, &train)) {
            fprintf(stderr, "char-rnn: out of memory\n");
            error = 1;
        }
        printf("training: %d epochs, batch %lld, %lld windows (5 %% held "
               "out), Adam %g\n", a.epochs, (long long)a.batch,
               (long long)train.count, a.lr);
    }
    static const char *const model_names[2] = {"SimpleRNN", "LSTM"};
    for (int k = 0; k < 2 && !error; k++)
        error = text_model(&a, k ? KILN_LSTM : KILN_RNN_TANH, model_names[k],
                           &train, &al, text, units, sample_chars,
                           &res[k]) != 0;

    if (!error) {
        char svg[1024];
        const char *names[4] = {"SimpleRNN train", "SimpleRNN validation",
                                "LSTM train", "LSTM validation"};
        const double *curves[4] = {res[0].h.loss, res[0].h.val_loss,
                                   res[1].h.loss, res[1].h.val_loss};
        int pictures = !demo_svg_curves(demo_path(&a, "loss.svg", svg,
                                                  sizeof svg),
                                        "char-rnn: next-character loss",
                                        "cross-entropy", 4, names, curves,
                                        (int)res[0].h.epochs);
        const kiln_device_info *d = kiln_context_device(ctx);
        printf("\nsummary: char-rnn on %s [%s]\n", d->name,
               kiln_backend_name(d->backend));
        for (int k = 0; k < 2; k++) {
            const kiln_history *h = &res[k].h;
            int fell = res[k].last < res[k].first;
            printf("  %-9s loss %.3f -> %.3f (first/last tenth of %lld "
                   "steps), fell: %s; validation accuracy %.1f %%;\n"
                   "            %.1f s, %.0f samples/s, %llu kernels per step "
                   "(%llu with the optimizer)\n", model_names[k],
                   res[k].first, res[k].last, (long long)h->steps,
                   fell ? "yes" : "NO", 100 * h->val_accuracy[h->epochs - 1],
                   h->seconds, h->samples_per_second,
                   (unsigned long long)h->kernels_per_step,
                   (unsigned long long)h->step_kernels_total);
            ok &= fell;
        }
        printf("  LSTM's final loss %s the SimpleRNN's (%.3f vs %.3f)\n",
               res[1].h.loss[res[1].h.epochs - 1] <
                       res[0].h.loss[res[0].h.epochs - 1]
                   ? "below"
                   : "not below",
               res[1].h.loss[res[1].h.epochs - 1],
               res[0].h.loss[res[0].h.epochs - 1]);
        printf("  pictures: %s %s\n", svg, pictures ? "written" : "NOT written");
        ok &= pictures;
    }
    if (!error && kiln_status_of(ctx) != KILN_OK) {
        fprintf(stderr, "char-rnn: %s\n", kiln_error_message(ctx));
        error = 1;
    }
    if (!error)
        printf("%s\n", ok ? "PASS: \"hello\" from every cell, the text "
                            "models' loss fell"
                          : "FAIL");
    for (int k = 0; k < 2; k++)
        kiln_history_free(&res[k].h);
    kiln_dataset_free(&train);
    free(text);
    kiln_context_destroy(ctx);
    return error ? 2 : ok ? 0 : 1;
}
