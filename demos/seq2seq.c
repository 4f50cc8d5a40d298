/*
 * seq2seq - an LSTM encoder-decoder (COURSE.md example 20) that learns to
 * reverse strings of 3 to 8 digits: "52814" -> "41825".
 *
 * One graph holds both halves.  The encoder LSTM reads the source (left-
 * padded, so its last step is always the last digit) and its last output
 * becomes the decoder's initial hidden state h0 (kiln_g_rnn returns the
 * output sequence, so the cell state starts at zero).  The decoder LSTM
 * reads the target shifted right behind a GO token (teacher forcing) and a
 * dense layer scores the next token at every step (the digits and EOS);
 * the loss is the softmax cross-entropy over all steps, trained with Adam
 * (learning rate decayed along a half cosine) and gradient clipping on
 * fresh random strings every step.  Answers come by greedy decoding: from
 * GO, the most likely token is appended and the decoder run again, until
 * EOS.  Accuracy is exact match on held-out strings: every string whose
 * hash is 0 modulo 10 is never trained on.
 *
 * Writes loss.svg and accuracy.svg (per epoch) into --out; --save FILE
 * writes the weights (safetensors), --load FILE starts from them (and
 * first prints their exact match, the same as when they were saved).
 * --fast: 64 hidden units, 3 epochs of 80 steps of 32 strings.
 *
 * usage: seq2seq [--device SPEC] [--epochs 20] [--batch 64] [--lr 0.01]
 *                [--seed 1] [--limit STEPS_PER_EPOCH] [--out DIR]
 *                [--save FILE] [--load FILE] [--fast]
 * Exit status: 0 the exact-match target was reached (95 %; --fast: 15 %),
 * 1 not, 2 an error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "demo.h"

enum {
    MIN_LEN = 3, MAX_LEN = 8,
    GO = 10, EOS = 11, PAD = 12, VOCAB = 13, /* tokens; 0-9 are digits */
    DEC_LEN = MAX_LEN + 1,                   /* answer + EOS           */
    TEST = 1000,                             /* held-out strings       */
};

static kiln_context *ctx;

/* ---- data -------------------------------------------------------------- */

/* splitmix64: a small seeded generator for the host-side data. */
static uint64_t next_random(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A digit string: its length and digits. */
typedef struct digits {
    int len;
    int8_t d[MAX_LEN];
} digits;

/* Held-out strings: FNV-1a of the digits, 0 modulo 10. */
static int held_out(const digits *s)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < s->len; i++)
        h = (h ^ (uint32_t)(s->d[i] + 1)) * 16777619u;
    return h % 10 == 0;
}

/* A random string of the training (@test 0) or held-out (@test 1) kind. */
static digits draw(uint64_t *rng, int test)
{
    digits s;
    do {
        s.len = MIN_LEN + (int)(next_random(rng) % (MAX_LEN - MIN_LEN + 1));
        for (int i = 0; i < s.len; i++)
            s.d[i] = (int8_t)(next_random(rng) % 10);
    } while (held_out(&s) != test);
    return s;
}

/* Encoder input: PAD ... PAD d1 .. dL (MAX_LEN tokens).  Decoder input:
 * GO then the answer, and its labels: the answer then EOS; both EOS to the
 * end (DEC_LEN tokens).  The answer is the source reversed. */
static void encode(const digits *s, int32_t *src, int32_t *dec_in,
                   int32_t *labels)
{
    for (int i = 0; i < MAX_LEN; i++)
        src[i] = i < MAX_LEN - s->len ? PAD : s->d[i - (MAX_LEN - s->len)];
    for (int t = 0; t < DEC_LEN; t++) {
        int answer = t < s->len ? s->d[s->len - 1 - t] : EOS;
        if (labels)
            labels[t] = answer;
        if (dec_in && t + 1 < DEC_LEN)
            dec_in[t + 1] = answer;
    }
    if (dec_in)
        dec_in[0] = GO;
}

/* ---- the model ------------------------------------------------------------- */

enum { EMBED = 16, NPARAM = 12 };

typedef struct seq2seq {
    int hidden;
    kiln_graph *g;
    kiln_node *src, *dec_in, *labels;    /* [N, MAX_LEN], [N, T], [N*T] */
    kiln_node *params[NPARAM];
    kiln_node *loss, *predicted;         /* 0-D, [N*T] i32              */
    kiln_node *grads[NPARAM];
} seq2seq;

static const char *const param_names[NPARAM] = {
    "encoder.embedding", "encoder.w_ih", "encoder.w_hh", "encoder.b_ih",
    "encoder.b_hh", "decoder.embedding", "decoder.w_ih", "decoder.w_hh",
    "decoder.b_ih", "decoder.b_hh", "output.weight", "output.bias"};

/* A trainable variable of @shape filled by kiln_init(@kind, @a, @b). */
static kiln_node *variable(kiln_graph *g, const char *name, int ndim,
                           const int64_t *shape, kiln_init_kind kind,
                           double a, double b, uint64_t seed)
{
    kiln_tensor *t = kiln_tensor_new(ctx, KILN_F32, ndim, shape);
    kiln_init(t, kind, a, b, seed, 0);
    kiln_node *v = kiln_g_variable(g, name, t);
    kiln_tensor_free(t);
    return v;
}

/* LSTM input bias with the forget gate's part at 1 (gates i, f, g, o), as
 * the course does: the cell keeps its state until it learns to forget. */
static kiln_node *forget_bias(kiln_graph *g, const char *name, int hidden)
{
    float *b = calloc((size_t)(4 * hidden), sizeof *b);
    for (int i = 0; b && i < hidden; i++)
        b[hidden + i] = 1;
    kiln_tensor *t = b ? kiln_tensor_from_data(ctx, KILN_F32, 1,
                                               (int64_t[]){4 * hidden}, b,
                                               sizeof *b * (size_t)(4 * hidden))
                       : NULL;
    kiln_node *v = t ? kiln_g_variable(g, name, t) : NULL;
    kiln_tensor_free(t);
    free(b);
    return v;
}

/* Builds the encoder-decoder graph; 0 on success. */
static int build(seq2seq *m, int hidden, uint64_t seed)
{
    int64_t H = hidden, G = 4 * H;
    kiln_graph *g = m->g = kiln_graph_new(ctx);
    m->hidden = hidden;
    m->src = kiln_g_input(g, "source", KILN_I32, 2, (int64_t[]){-1, MAX_LEN});
    m->dec_in = kiln_g_input(g, "decoder_input", KILN_I32, 2,
                             (int64_t[]){-1, -1});
    m->labels = kiln_g_input(g, "labels", KILN_I32, 1, (int64_t[]){-1});
    kiln_node **p = m->params;
    for (int half = 0; half < 2; half++) { /* encoder, decoder */
        int k = 5 * half;
        uint64_t s = seed + 10 * (uint64_t)half;
        p[k] = variable(g, param_names[k], 2, (int64_t[]){VOCAB, EMBED},
                        KILN_INIT_UNIFORM, -1, 1, s);
        p[k + 1] = variable(g, param_names[k + 1], 2, (int64_t[]){G, EMBED},
                            KILN_INIT_XAVIER_UNIFORM, 0, 0, s + 1);
        p[k + 2] = variable(g, param_names[k + 2], 2, (int64_t[]){G, H},
                            KILN_INIT_XAVIER_UNIFORM, 0, 0, s + 2);
        p[k + 3] = forget_bias(g, param_names[k + 3], hidden);
        p[k + 4] = variable(g, param_names[k + 4], 1, &G, KILN_INIT_ZEROS, 0,
                            0, 0);
    }
    p[10] = variable(g, param_names[10], 2, (int64_t[]){H, VOCAB},
                     KILN_INIT_XAVIER_UNIFORM, 0, 0, seed + 20);
    p[11] = variable(g, param_names[11], 1, (int64_t[]){VOCAB},
                     KILN_INIT_ZEROS, 0, 0, 0);

    /* Encoder: [N, MAX_LEN, H]; its last step, as [1, N, H], is h0. */
    kiln_node *enc = kiln_g_rnn(kiln_g_embedding(p[0], m->src), NULL, NULL,
                                p[1], p[2], p[3], p[4], KILN_LSTM, 1);
    kiln_node *h0 = kiln_g_transpose(
        kiln_g_slice(enc, 1, MAX_LEN - 1, MAX_LEN, 1), 0, 1);
    /* Decoder: [N, T, H] -> scores [N*T, VOCAB]. */
    kiln_node *dec = kiln_g_rnn(kiln_g_embedding(p[5], m->dec_in), h0, NULL,
                                p[6], p[7], p[8], p[9], KILN_LSTM, 1);
    kiln_node *logits = kiln_g_add(
        kiln_g_matmul(kiln_g_reshape(dec, 2, (int64_t[]){-1, H}), p[10]),
        p[11]);
    m->loss = kiln_g_softmax_cross_entropy(logits, m->labels);
    m->predicted = kiln_g_argmax(logits, 1, 0);
    kiln_g_gradients(m->loss, NPARAM, m->params, m->grads);
    return kiln_status_of(ctx) == KILN_OK ? 0 : -1;
}

/* Greedy decoding of @n sources (encoded, [n, MAX_LEN]) into @out
 * ([n, DEC_LEN]): from GO, append the most likely token and run again. */
static kiln_status greedy(seq2seq *m, int64_t n, const int32_t *src,
                          int32_t *out)
{
    /* dec holds the decoder input column-major while it grows (column t
     * is every string's token t), copied row-major into [n, t] for each
     * run. */
    int32_t *dec = malloc(sizeof *dec * (size_t)(n * DEC_LEN));
    int32_t *rows = malloc(sizeof *rows * (size_t)(n * DEC_LEN));
    int32_t *pred = malloc(sizeof *pred * (size_t)(n * DEC_LEN));
    if (!dec || !rows || !pred) {
        free(dec);
        free(rows);
        free(pred);
        return KILN_ERROR_OUT_OF_HOST_MEMORY;
    }
    for (int64_t i = 0; i < n; i++)
        dec[i] = GO;
    kiln_tensor *tsrc = kiln_tensor_from_data(
        ctx, KILN_I32, 2, (int64_t[]){n, MAX_LEN}, src,
        sizeof *src * (size_t)(n * MAX_LEN));
    kiln_status st = tsrc ? KILN_OK : kiln_status_of(ctx);
    for (int t = 1; st == KILN_OK && t <= DEC_LEN; t++) {
        for (int64_t i = 0; i < n; i++)
            for (int k = 0; k < t; k++)
                rows[i * t + k] = dec[k * n + i];
        kiln_tensor *tdec = kiln_tensor_from_data(
            ctx, KILN_I32, 2, (int64_t[]){n, t}, rows,
            sizeof *rows * (size_t)(n * t));
        kiln_feed feeds[2] = {{m->src, tsrc}, {m->dec_in, tdec}};
        kiln_tensor *p = NULL;
        st = kiln_graph_run(m->g, 2, feeds, 1, &m->predicted, &p);
        if (st == KILN_OK)
            st = kiln_tensor_read(p, pred, sizeof *pred * (size_t)(n * t));
        for (int64_t i = 0; st == KILN_OK && i < n; i++) {
            out[i * DEC_LEN + t - 1] = pred[i * t + t - 1];
            if (t < DEC_LEN)
                dec[t * n + i] = pred[i * t + t - 1];
        }
        kiln_tensor_free(p);
        kiln_tensor_free(tdec);
    }
    kiln_tensor_free(tsrc);
    free(rows);
    free(dec);
    free(pred);
    return st;
}

/* Exact matches of the decoded answers (up to the first EOS) among @n. */
static int64_t exact_matches(const digits *s, const int32_t *out, int64_t n)
{
    int64_t right = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t want[DEC_LEN];
        encode(&s[i], (int32_t[MAX_LEN]){0}, NULL, want);
        right += !memcmp(want, out + i * DEC_LEN,
                         sizeof *want * (size_t)(s[i].len + 1));
    }
    return right;
}

/* The tokens up to EOS as text: digits, '^' for GO, '_' for PAD. */
static char *tokens_text(const int32_t *t, int n, char *buf)
{
    int i = 0;
    for (; i < n && t[i] != EOS; i++)
        buf[i] = (char)(t[i] < 10 ? '0' + t[i] : t[i] == GO ? '^' : '_');
    buf[i] = '\0';
    return buf;
}

static int save_weights(seq2seq *m, const char *path)
{
    kiln_tensor *t[NPARAM];
    for (int i = 0; i < NPARAM; i++)
        t[i] = kiln_g_variable_tensor(m->params[i]);
    return kiln_safetensors_save(ctx, path, NPARAM, param_names, t, 0, NULL,
                                 NULL) == KILN_OK ? 0 : -1;
}

static int load_weights(seq2seq *m, const char *path)
{
    kiln_tensor_file *f = kiln_safetensors_open(ctx, path);
    kiln_status st = f ? KILN_OK : kiln_status_of(ctx);
    for (int i = 0; st == KILN_OK && i < NPARAM; i++)
        st = kiln_tensor_file_load_into(f, param_names[i],
                                        kiln_g_variable_tensor(m->params[i]));
    kiln_tensor_file_close(f);
    return st == KILN_OK ? 0 : -1;
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- training ------------------------------------------------------------------ */

/* One teacher-forced step on a fresh batch at learning rate @lr; the loss
 * tensor (the caller frees it) or NULL. */
static kiln_tensor *train_step(seq2seq *m, kiln_optimizer *opt, double lr,
                               int64_t B, uint64_t *rng, int32_t *src,
                               int32_t *dec, int32_t *labels)
{
    for (int64_t i = 0; i < B; i++) {
        digits s = draw(rng, 0);
        encode(&s, src + i * MAX_LEN, dec + i * DEC_LEN, labels + i * DEC_LEN);
    }
    kiln_tensor *fed[3] = {
        kiln_tensor_from_data(ctx, KILN_I32, 2, (int64_t[]){B, MAX_LEN}, src,
                              sizeof *src * (size_t)(B * MAX_LEN)),
        kiln_tensor_from_data(ctx, KILN_I32, 2, (int64_t[]){B, DEC_LEN}, dec,
                              sizeof *dec * (size_t)(B * DEC_LEN)),
        kiln_tensor_from_data(ctx, KILN_I32, 1, (int64_t[]){B * DEC_LEN},
                              labels, sizeof *labels * (size_t)(B * DEC_LEN)),
    };
    kiln_feed feeds[3] = {{m->src, fed[0]}, {m->dec_in, fed[1]},
                          {m->labels, fed[2]}};
    kiln_node *fetch[1 + NPARAM] = {m->loss};
    memcpy(fetch + 1, m->grads, sizeof m->grads);
    kiln_tensor *out[1 + NPARAM] = {NULL};
    kiln_tensor *values[NPARAM];
    for (int i = 0; i < NPARAM; i++)
        values[i] = kiln_g_variable_tensor(m->params[i]);
    kiln_status st = kiln_graph_run(m->g, 3, feeds, 1 + NPARAM, fetch, out);
    if (st == KILN_OK)
        st = kiln_clip_grad_norm(out + 1, NPARAM, 1.0, NULL);
    if (st == KILN_OK)
        st = kiln_optimizer_step(opt, NPARAM, values, out + 1, lr);
    for (int i = 0; i < 3; i++)
        kiln_tensor_free(fed[i]);
    for (int i = 1; i <= NPARAM; i++)
        kiln_tensor_free(out[i]);
    if (st != KILN_OK) {
        kiln_tensor_free(out[0]);
        return NULL;
    }
    return out[0];
}

int main(int argc, char **argv)
{
    demo_args a = {.epochs = 20, .batch = 64, .lr = 0.01, .seed = 1};
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress shows when piped too */
    if (!demo_parse_args(argc, argv, &a,
                         "usage: seq2seq [options]: an LSTM encoder-decoder "
                         "reversing digit strings\n(--limit N: training "
                         "steps per epoch, default 250)\n"))
        return 2;
    int hidden = 128;
    int64_t steps_per_epoch = a.limit > 0 ? a.limit : 250;
    double target = 95;
    int ntest = TEST;
    if (a.fast) { /* the few-second variant the tests run */
        a.epochs = 3;
        a.batch = 32;
        steps_per_epoch = a.limit > 0 ? a.limit : 80;
        hidden = 64;
        target = 15;
        ntest = 200;
    }
    ctx = demo_open(&a, "seq2seq");
    if (!ctx)
        return 2;

    /* The held-out strings: a fixed draw, whatever --seed says. */
    uint64_t test_rng = 12345;
    digits *test = malloc(sizeof *test * TEST);
    int32_t *test_src = malloc(sizeof *test_src * TEST * MAX_LEN);
    int32_t *decoded = malloc(sizeof *decoded * TEST * DEC_LEN);
    int64_t B = a.batch;
    int32_t *src = malloc(sizeof *src * (size_t)(B * MAX_LEN));
    int32_t *dec = malloc(sizeof *dec * (size_t)(B * DEC_LEN));
    int32_t *labels = malloc(sizeof *labels * (size_t)(B * DEC_LEN));
    double *loss_curve = malloc(sizeof *loss_curve * (size_t)a.epochs);
    double *accuracy_curve = malloc(sizeof *accuracy_curve *
                                    (size_t)a.epochs);
    if (!test || !test_src || !decoded || !src || !dec || !labels ||
        !loss_curve || !accuracy_curve) {
        fprintf(stderr, "seq2seq: out of host memory\n");
        return 2;
    }
    for (int i = 0; i < TEST; i++) {
        test[i] = draw(&test_rng, 1);
        encode(&test[i], test_src + i * MAX_LEN, NULL, NULL);
    }

    seq2seq m = {0};
    int error = build(&m, hidden, a.seed) != 0;
    if (!error && a.load) {
        /* The loaded weights answer as they did when saved; training then
         * goes on from them with a fresh optimizer and schedule. */
        error = load_weights(&m, a.load) != 0 ||
                greedy(&m, ntest, test_src, decoded) != KILN_OK;
        if (!error)
            printf("loaded %s: held-out exact match %.1f %%\n", a.load,
                   100.0 * (double)exact_matches(test, decoded, ntest) /
                       ntest);
    }
    kiln_optimizer *opt = kiln_optimizer_new(
        ctx, &(kiln_optimizer_config){.kind = KILN_OPT_ADAM, .lr = a.lr});
    printf("reversing %d to %d digits: LSTM encoder-decoder, embeddings %d, "
           "%d hidden units, %d tokens (digits, GO, EOS, PAD)\n", MIN_LEN,
           MAX_LEN, EMBED, hidden, VOCAB);
    printf("training: %d epochs of %lld steps, batch %lld (fresh strings "
           "every step), Adam %g cosine-decayed to 1/20 of it, clip norm "
           "1; %d held-out strings\n",
           a.epochs, (long long)steps_per_epoch, (long long)B, a.lr, ntest);

    uint64_t rng = a.seed;
    double t0 = seconds_now(), train_seconds = 0;
    uint64_t kernels = 0;
    double accuracy = 0;
    for (int epoch = 0; !error && epoch < a.epochs; epoch++) {
        double e0 = seconds_now(), sum = 0;
        int64_t read = 0;
        for (int64_t step = 0; !error && step < steps_per_epoch; step++) {
            /* The learning rate falls along a half cosine to lr / 20. */
            kiln_lr_schedule cosine = {KILN_LR_COSINE, a.lr, 0,
                                       (double)(a.epochs * steps_per_epoch),
                                       a.lr / 20};
            double lr = kiln_lr_at(&cosine,
                                   (double)(epoch * steps_per_epoch + step));
            kiln_tensor *loss = train_step(&m, opt, lr, B, &rng, src, dec,
                                           labels);
            /* The loss is read back (a wait) every 10th step. */
            float l = 0;
            error = !loss || (step % 10 == 0 &&
                              kiln_tensor_read(loss, &l, sizeof l) != KILN_OK);
            if (step % 10 == 0) {
                sum += l;
                read++;
            }
            if (!error && step % 50 == 0 && step)
                printf("  epoch %d/%d step %lld/%lld: loss %.4f\n", epoch + 1,
                       a.epochs, (long long)step, (long long)steps_per_epoch,
                       l);
            kiln_tensor_free(loss);
        }
        if (!error && epoch == 0) {
            kiln_graph_stats gs;
            kiln_graph_get_stats(m.g, &gs);
            kernels = gs.kernels;
        }
        train_seconds += seconds_now() - e0;
        loss_curve[epoch] = sum / (double)(read ? read : 1);
        if (!error)
            error = greedy(&m, ntest, test_src, decoded) != KILN_OK;
        if (!error) {
            accuracy = 100.0 * (double)exact_matches(test, decoded, ntest) /
                       ntest;
            accuracy_curve[epoch] = accuracy;
            printf("epoch %d/%d: loss %.4f, held-out exact match %.1f %%, "
                   "%.1f s\n", epoch + 1, a.epochs, loss_curve[epoch],
                   accuracy, seconds_now() - t0);
        }
    }
    if (error) {
        fprintf(stderr, "seq2seq: %s\n", kiln_error_message(ctx));
    } else {
        printf("some held-out strings, greedy decoding:\n");
        for (int i = 0; i < 8; i++) {
            int32_t want[DEC_LEN];
            encode(&test[i], (int32_t[MAX_LEN]){0}, NULL, want);
            char in[DEC_LEN + 1], got[DEC_LEN + 1];
            int right = !memcmp(want, decoded + i * DEC_LEN,
                                sizeof *want * (size_t)(test[i].len + 1));
            printf("  %8s -> %-9s %s\n",
                   tokens_text(test_src + i * MAX_LEN + MAX_LEN - test[i].len,
                               test[i].len, in),
                   tokens_text(decoded + i * DEC_LEN, DEC_LEN, got),
                   right ? "right" : "WRONG");
        }
        if (a.save) {
            if (save_weights(&m, a.save) == 0)
                printf("saved %s\n", a.save);
            else
                fprintf(stderr, "seq2seq: --save: %s\n",
                        kiln_error_message(ctx));
        }
        char path[1024];
        const char *ln = "training loss", *an = "held-out exact match";
        const double *lc = loss_curve, *ac = accuracy_curve;
        int pictures =
            !demo_svg_curves(demo_path(&a, "loss.svg", path, sizeof path),
                             "seq2seq: reversing digit strings",
                             "cross-entropy", 1, &ln, &lc, a.epochs) +
            !demo_svg_curves(demo_path(&a, "accuracy.svg", path, sizeof path),
                             "seq2seq: reversing digit strings",
                             "exact match (%)", 1, &an, &ac, a.epochs);
        const kiln_device_info *d = kiln_context_device(ctx);
        printf("\nsummary: seq2seq on %s [%s]\n", d->name,
               kiln_backend_name(d->backend));
        printf("  held-out exact match %.1f %% of %d strings; loss %.4f -> "
               "%.4f\n", accuracy, ntest, loss_curve[0],
               loss_curve[a.epochs - 1]);
        printf("  %lld steps in %.1f s of training (%.1f s in all), %.0f "
               "samples/s, %llu kernels per step (+ clipping, optimizer)\n",
               (long long)(a.epochs * steps_per_epoch), train_seconds,
               seconds_now() - t0,
               (double)(a.epochs * steps_per_epoch * B) / train_seconds,
               (unsigned long long)kernels);
        printf("  pictures: %d written to %s/ (loss.svg, accuracy.svg)\n",
               pictures, a.out ? a.out : ".");
        printf("  target %.0f %%: %s\n", target,
               accuracy >= target ? "reached" : "NOT reached");
        if (accuracy < target || pictures != 2)
            error = -1;
    }
    kiln_optimizer_free(opt);
    kiln_graph_free(m.g);
    free(test);
    free(test_src);
    free(decoded);
    free(src);
    free(dec);
    free(labels);
    free(loss_curve);
    free(accuracy_curve);
    kiln_context_destroy(ctx);
    return error > 0 ? 2 : error < 0 ? 1 : 0;
}
