/*
 * word-analogy - word vectors (COURSE.md example 19):
 *
 *   1. "Man is to woman as king is to ?" with the course's 4-feature table
 *      (gender, royal, age, food) for man, woman, king, queen, apple and
 *      orange: e(king) - e(man) + e(woman) is closest, by cosine
 *      similarity, to e(queen).  Computed with Kiln's ops on the device.
 *   2. A small skip-gram with negative sampling (word2vec) trained on a
 *      text file (default: the GPL-3 text Debian ships): each word predicts
 *      the words within 2 of it (label 1) against 5 words drawn from the
 *      unigram distribution^0.75 (label 0), scored by the dot product of
 *      an input and an output embedding (kiln_g_embedding), with the
 *      sigmoid cross-entropy, graph autodiff and Adam.  Prints the nearest
 *      neighbours (cosine) of the text's most frequent long words.
 *
 * Words are lowercased runs of letters; words seen fewer than 2 times are
 * dropped, and frequent words are subsampled (word2vec's rule, t = 1e-3).
 * Writes loss.svg into --out; --save FILE writes both embedding tables and
 * the vocabulary (safetensors), --load FILE starts from such a file.
 *
 * usage: word-analogy [--device SPEC] [--epochs 30] [--batch 256]
 *                     [--lr 0.005] [--seed 1] [--data TEXTFILE]
 *                     [--limit WORDS] [--out DIR] [--save FILE]
 *                     [--load FILE] [--fast]
 * Exit status: 0 the analogy gives queen and the skip-gram loss fell, 1
 * not, 2 an error.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "demo.h"

static kiln_context *ctx;

/* ---- 1. the course's table ------------------------------------------------ */

enum { WORDS = 6, FEATURES = 4 };
static const char *const course_words[WORDS] = {"man", "woman", "king",
                                                "queen", "apple", "orange"};
/* COURSE.md 19: gender, royal, age, food. */
static const float course_table[WORDS][FEATURES] = {
    {-1.00f, 0.01f, 0.03f, 0.04f},  /* man    */
    {1.00f, 0.02f, 0.02f, 0.01f},   /* woman  */
    {-0.95f, 0.93f, 0.70f, 0.02f},  /* king   */
    {0.97f, 0.95f, 0.69f, 0.01f},   /* queen  */
    {0.00f, -0.01f, 0.03f, 0.95f},  /* apple  */
    {0.01f, 0.00f, -0.02f, 0.97f},  /* orange */
};

/* Cosine similarity of every row of @table [rows, D] with @q [D]:
 * (table q) / (|row| |q|), on the device.  NULL on error. */
static kiln_tensor *cosines(kiln_tensor *table, kiln_tensor *q)
{
    int axis = 1;
    kiln_tensor *dots = kiln_matmul(table, q); /* [rows] */
    kiln_tensor *squares = kiln_square(table);
    kiln_tensor *row_norm2 = kiln_sum(squares, 1, &axis, 0);
    kiln_tensor *row_norm = kiln_sqrt(row_norm2);
    kiln_tensor *q_squares = kiln_square(q);
    kiln_tensor *q_norm2 = kiln_sum(q_squares, 0, NULL, 0);
    kiln_tensor *q_norm = kiln_sqrt(q_norm2);
    kiln_tensor *norms = kiln_mul(row_norm, q_norm);
    kiln_tensor *cos = kiln_div(dots, norms);
    kiln_tensor *temporaries[] = {dots, squares, row_norm2, row_norm,
                                  q_squares, q_norm2, q_norm, norms};
    for (size_t i = 0; i < sizeof temporaries / sizeof *temporaries; i++)
        kiln_tensor_free(temporaries[i]);
    return cos;
}

static int analogy(void)
{
    kiln_tensor *table = kiln_tensor_from_data(
        ctx, KILN_F32, 2, (int64_t[]){WORDS, FEATURES}, course_table,
        sizeof course_table);
    printf("1. the course's word vectors (gender, royal, age, food):\n");
    for (int w = 0; w < WORDS; w++)
        printf("  %-7s [%5.2f %5.2f %5.2f %5.2f]\n", course_words[w],
               course_table[w][0], course_table[w][1], course_table[w][2],
               course_table[w][3]);

    /* Rows as views [FEATURES]: man = 0, woman = 1, king = 2, queen = 3. */
    kiln_tensor *row[4];
    for (int w = 0; w < 4; w++) {
        kiln_tensor *one = kiln_slice(table, 0, w, w + 1, 1); /* [1, F] */
        row[w] = kiln_reshape(one, 1, (int64_t[]){FEATURES});
        kiln_tensor_free(one);
    }
    kiln_tensor *man_woman = kiln_sub(row[0], row[1]);
    kiln_tensor *king_queen = kiln_sub(row[2], row[3]);
    kiln_tensor *king_man = kiln_sub(row[2], row[0]);
    kiln_tensor *query = kiln_add(king_man, row[1]);
    kiln_tensor *cos = cosines(table, query);

    float mw[FEATURES], kq[FEATURES], q[FEATURES], c[WORDS];
    int ok = kiln_tensor_read(man_woman, mw, sizeof mw) == KILN_OK &&
             kiln_tensor_read(king_queen, kq, sizeof kq) == KILN_OK &&
             kiln_tensor_read(query, q, sizeof q) == KILN_OK &&
             kiln_tensor_read(cos, c, sizeof c) == KILN_OK;
    int best = -1;
    if (ok) {
        printf("  man - woman  = [%5.2f %5.2f %5.2f %5.2f]\n", mw[0], mw[1],
               mw[2], mw[3]);
        printf("  king - queen = [%5.2f %5.2f %5.2f %5.2f]  (about the "
               "same: the gender direction)\n", kq[0], kq[1], kq[2], kq[3]);
        printf("  king - man + woman = [%5.2f %5.2f %5.2f %5.2f]\n", q[0],
               q[1], q[2], q[3]);
        printf("  cosine similarity with it:\n");
        /* The answer is the most similar word other than the three given
         * (as in word2vec); here queen is the most similar of all anyway. */
        for (int w = 0; w < WORDS; w++) {
            int given = w <= 2;
            printf("    %-7s %7.4f%s\n", course_words[w], c[w],
                   given ? "  (given)" : "");
            if (!given && (best < 0 || c[w] > c[best]))
                best = w;
        }
        printf("  man : woman = king : %s\n", course_words[best]);
    }
    kiln_tensor_free(cos);
    kiln_tensor_free(query);
    kiln_tensor_free(king_man);
    kiln_tensor_free(king_queen);
    kiln_tensor_free(man_woman);
    for (int w = 0; w < 4; w++)
        kiln_tensor_free(row[w]);
    kiln_tensor_free(table);
    if (!ok)
        return -1;
    return best == 3 ? 1 : 0;
}

/* ---- 2. skip-gram with negative sampling ------------------------------------ */

enum { WINDOW = 2, NEGATIVES = 5, DIM = 50, MIN_COUNT = 2, SHOW = 5 };

/* splitmix64: a small seeded generator for the host-side sampling. */
static uint64_t next_random(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s)
{
    return (double)(next_random(s) >> 11) * (1.0 / 9007199254740992.0);
}

typedef struct vocabulary {
    int size;
    char **words;      /* most frequent first (ties alphabetically) */
    int64_t *counts;
} vocabulary;

static void vocabulary_free(vocabulary *v)
{
    for (int i = 0; v->words && i < v->size; i++)
        free(v->words[i]);
    free(v->words);
    free(v->counts);
}

/* Words of @path: lowercased runs of letters, up to @limit (0: all). */
static char **read_words(const char *path, int64_t limit, int64_t *count)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    int64_t n = 0, cap = 4096;
    char **words = malloc(sizeof *words * (size_t)cap);
    char word[64];
    int len = 0, c;
    while (words && (limit <= 0 || n < limit)) {
        c = fgetc(f);
        if (c != EOF && isalpha(c)) {
            if (len < (int)sizeof word - 1)
                word[len++] = (char)tolower(c);
            continue;
        }
        if (len) {
            word[len] = '\0';
            len = 0;
            if (n == cap) {
                char **bigger = realloc(words, sizeof *words *
                                                   (size_t)(cap *= 2));
                if (!bigger)
                    break;
                words = bigger;
            }
            if (!(words[n] = strdup(word)))
                break;
            n++;
        }
        if (c == EOF)
            break;
    }
    fclose(f);
    *count = n;
    return words;
}

/* A word and a number: its count while counting, its vocabulary index in
 * the lookup table. */
typedef struct word_entry {
    const char *word;
    int64_t n;
} word_entry;

static int by_word(const void *a, const void *b)
{
    return strcmp(((const word_entry *)a)->word, ((const word_entry *)b)->word);
}

static int by_count(const void *a, const void *b)
{
    const word_entry *x = a, *y = b;
    if (x->n != y->n)
        return x->n > y->n ? -1 : 1;
    return strcmp(x->word, y->word);
}

/* The text prepared for training: the vocabulary (words seen MIN_COUNT
 * times or more), the text as vocabulary indices (other words dropped),
 * each word's probability of being kept by subsampling, and the table
 * negatives are drawn from. */
enum { NEGATIVE_TABLE = 100000 };
typedef struct corpus {
    vocabulary v;
    int64_t length;
    int32_t *tokens;
    double *keep;
    int32_t *negatives; /* NEGATIVE_TABLE entries */
} corpus;

static void corpus_free(corpus *c)
{
    vocabulary_free(&c->v);
    free(c->tokens);
    free(c->keep);
    free(c->negatives);
}

static int build_corpus(char **words, int64_t n, corpus *c)
{
    vocabulary *v = &c->v;
    word_entry *e = malloc(sizeof *e * (size_t)(n ? n : 1));
    if (!e)
        return -1;
    /* Count: sort the words, then runs of equal words. */
    for (int64_t i = 0; i < n; i++)
        e[i] = (word_entry){words[i], 0};
    qsort(e, (size_t)n, sizeof *e, by_word);
    int64_t distinct = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!distinct || strcmp(e[i].word, e[distinct - 1].word))
            e[distinct++] = (word_entry){e[i].word, 0};
        e[distinct - 1].n++;
    }
    qsort(e, (size_t)distinct, sizeof *e, by_count);
    while (v->size < distinct && e[v->size].n >= MIN_COUNT)
        v->size++;
    size_t vs = (size_t)(v->size ? v->size : 1);
    v->words = calloc(vs, sizeof *v->words);
    v->counts = malloc(sizeof *v->counts * vs);
    c->tokens = malloc(sizeof *c->tokens * (size_t)(n ? n : 1));
    c->keep = malloc(sizeof *c->keep * vs);
    c->negatives = malloc(sizeof *c->negatives * NEGATIVE_TABLE);
    int ok = v->words && v->counts && c->tokens && c->keep && c->negatives;
    for (int i = 0; ok && i < v->size; i++) {
        ok = (v->words[i] = strdup(e[i].word)) != NULL;
        v->counts[i] = e[i].n;
    }
    if (ok) {
        /* The lookup table: the vocabulary sorted by word, n = index. */
        for (int i = 0; i < v->size; i++)
            e[i] = (word_entry){v->words[i], i};
        qsort(e, (size_t)v->size, sizeof *e, by_word);
        c->length = 0;
        for (int64_t i = 0; i < n; i++) {
            word_entry key = {words[i], 0};
            const word_entry *hit = bsearch(&key, e, (size_t)v->size,
                                            sizeof *e, by_word);
            if (hit)
                c->tokens[c->length++] = (int32_t)hit->n;
        }
        /* Subsampling keeps a word of frequency f with probability
         * sqrt(t/f) + t/f, t = 1e-3 (word2vec); negatives are drawn in
         * proportion to count^0.75. */
        double total = 0, upto = 0;
        for (int i = 0; i < v->size; i++) {
            double f = (double)v->counts[i] / (double)c->length;
            c->keep[i] = fmin(1.0, sqrt(1e-3 / f) + 1e-3 / f);
            total += pow((double)v->counts[i], 0.75);
        }
        for (int i = 0, k = 0; i < v->size; i++) {
            upto += pow((double)v->counts[i], 0.75);
            int end = i == v->size - 1 ? NEGATIVE_TABLE
                                       : (int)(upto / total * NEGATIVE_TABLE);
            while (k < end)
                c->negatives[k++] = i;
        }
    }
    free(e);
    return ok ? 0 : -1;
}

/* The skip-gram graph: its inputs, parameters, loss and gradients. */
typedef struct skipgram {
    kiln_graph *g;
    kiln_node *center, *context, *target; /* [B], [B, 1+K], [B, 1+K] */
    kiln_node *w_in, *w_out;              /* [V, D] each             */
    kiln_node *loss, *grads[2];
} skipgram;

static int build_skipgram(skipgram *s, int vocab, uint64_t seed)
{
    s->g = kiln_graph_new(ctx);
    s->center = kiln_g_input(s->g, "center", KILN_I32, 1, (int64_t[]){-1});
    s->context = kiln_g_input(s->g, "context", KILN_I32, 2,
                              (int64_t[]){-1, 1 + NEGATIVES});
    s->target = kiln_g_input(s->g, "target", KILN_F32, 2,
                             (int64_t[]){-1, 1 + NEGATIVES});
    /* word2vec's start: input vectors U(-0.5/D, 0.5/D), output zeros. */
    kiln_tensor *t = kiln_tensor_new(ctx, KILN_F32, 2,
                                     (int64_t[]){vocab, DIM});
    kiln_init(t, KILN_INIT_UNIFORM, -0.5 / DIM, 0.5 / DIM, seed, 0);
    s->w_in = kiln_g_variable(s->g, "w_in", t);
    kiln_fill(t, 0);
    s->w_out = kiln_g_variable(s->g, "w_out", t);
    kiln_tensor_free(t);
    /* score[b, k] = w_out[context[b, k]] . w_in[center[b]] */
    kiln_node *e_center = kiln_g_reshape(kiln_g_embedding(s->w_in, s->center),
                                         3, (int64_t[]){-1, 1, DIM});
    kiln_node *e_context = kiln_g_embedding(s->w_out, s->context);
    int axis = 2;
    kiln_node *scores = kiln_g_sum(kiln_g_mul(e_context, e_center), 1, &axis,
                                   0);
    s->loss = kiln_g_sigmoid_cross_entropy(scores, s->target);
    kiln_node *params[2] = {s->w_in, s->w_out};
    kiln_g_gradients(s->loss, 2, params, s->grads);
    return kiln_status_of(ctx) == KILN_OK ? 0 : -1;
}

/* The positive (center, context) pairs of one epoch, after subsampling,
 * shuffled, into @pairs (2 per pair); returns their number. */
static int64_t epoch_pairs(const corpus *c, uint64_t *rng, int32_t *kept,
                           int32_t *pairs)
{
    int64_t n = 0, np = 0;
    for (int64_t i = 0; i < c->length; i++)
        if (uniform01(rng) < c->keep[c->tokens[i]])
            kept[n++] = c->tokens[i];
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i - WINDOW; j <= i + WINDOW; j++)
            if (j != i && j >= 0 && j < n) {
                pairs[2 * np] = kept[i];
                pairs[2 * np + 1] = kept[j];
                np++;
            }
    for (int64_t i = np - 1; i > 0; i--) { /* Fisher-Yates */
        int64_t j = (int64_t)(next_random(rng) % (uint64_t)(i + 1));
        int32_t a = pairs[2 * i], b = pairs[2 * i + 1];
        pairs[2 * i] = pairs[2 * j];
        pairs[2 * i + 1] = pairs[2 * j + 1];
        pairs[2 * j] = a;
        pairs[2 * j + 1] = b;
    }
    return np;
}

/* Prints the SHOW nearest words (cosine of the input vectors) of each of
 * @nq query words. */
static int neighbours(kiln_tensor *w_in, const vocabulary *v,
                      const int32_t *queries, int nq)
{
    int axis = 1;
    kiln_tensor *sq = kiln_square(w_in);
    kiln_tensor *norm2 = kiln_sum(sq, 1, &axis, 1);
    kiln_tensor *norm = kiln_sqrt(norm2);
    kiln_tensor *unit = kiln_div(w_in, norm); /* rows of length 1 */
    kiln_tensor *ids = kiln_tensor_from_data(ctx, KILN_I32, 1,
                                             (int64_t[]){nq}, queries,
                                             sizeof *queries * (size_t)nq);
    kiln_tensor *rows = kiln_embedding(unit, ids);
    kiln_tensor *sims = kiln_gemm(rows, 0, unit, 1, 1.0, 0.0, NULL);
    float *host = malloc(sizeof *host * (size_t)nq * (size_t)v->size);
    int ok = host && sims &&
             kiln_tensor_read(sims, host, sizeof *host * (size_t)nq *
                                              (size_t)v->size) == KILN_OK;
    for (int q = 0; ok && q < nq; q++) {
        const float *s = host + (size_t)q * (size_t)v->size;
        int best[SHOW];
        int nb = 0;
        for (int i = 0; i < v->size; i++) { /* best[] kept sorted */
            if (i == queries[q] ||
                (nb == SHOW && !(s[i] > s[best[SHOW - 1]])))
                continue;
            int k = nb < SHOW ? nb++ : SHOW - 1; /* then moves up */
            while (k > 0 && s[i] > s[best[k - 1]]) {
                best[k] = best[k - 1];
                k--;
            }
            best[k] = i;
        }
        printf("  %-14s", v->words[queries[q]]);
        for (int k = 0; k < nb; k++)
            printf(" %s (%.2f)", v->words[best[k]], s[best[k]]);
        printf("\n");
    }
    free(host);
    kiln_tensor_free(sims);
    kiln_tensor_free(rows);
    kiln_tensor_free(ids);
    kiln_tensor_free(unit);
    kiln_tensor_free(norm);
    kiln_tensor_free(norm2);
    kiln_tensor_free(sq);
    return ok ? 0 : -1;
}

/* The vocabulary as one space-separated string (checkpoint metadata). */
static char *vocabulary_string(const vocabulary *v)
{
    size_t len = 1;
    for (int i = 0; i < v->size; i++)
        len += strlen(v->words[i]) + 1;
    char *s = malloc(len), *p = s;
    if (!s)
        return NULL;
    for (int i = 0; i < v->size; i++)
        p += sprintf(p, "%s%s", i ? " " : "", v->words[i]);
    *p = '\0';
    return s;
}

static int save_tables(const char *path, skipgram *s, const vocabulary *v)
{
    const char *names[2] = {"w_in", "w_out"};
    kiln_tensor *t[2] = {kiln_g_variable_tensor(s->w_in),
                         kiln_g_variable_tensor(s->w_out)};
    char *words = vocabulary_string(v);
    const char *key = "vocabulary", *value = words;
    kiln_status st = words ? kiln_safetensors_save(ctx, path, 2, names, t, 1,
                                                   &key, &value)
                           : KILN_ERROR_OUT_OF_HOST_MEMORY;
    free(words);
    return st == KILN_OK ? 0 : -1;
}

/* Loads both tables from @path, refusing a file made for another
 * vocabulary; prints why on failure. */
static int load_tables(const char *path, skipgram *s, const vocabulary *v)
{
    kiln_tensor_file *f = kiln_safetensors_open(ctx, path);
    char *words = vocabulary_string(v);
    const char *saved = f ? kiln_tensor_file_meta(f, "vocabulary") : NULL;
    const char *why = NULL;
    if (!f)
        why = kiln_error_message(ctx);
    else if (!words)
        why = "out of host memory";
    else if (!saved || strcmp(saved, words))
        why = "the file was made for another vocabulary (another text or "
              "--limit)";
    else if (kiln_tensor_file_load_into(f, "w_in",
                                        kiln_g_variable_tensor(s->w_in)) ||
             kiln_tensor_file_load_into(f, "w_out",
                                        kiln_g_variable_tensor(s->w_out)))
        why = kiln_error_message(ctx);
    if (why)
        fprintf(stderr, "word-analogy: --load %s: %s\n", path, why);
    free(words);
    kiln_tensor_file_close(f);
    return why ? -1 : 0;
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One training step on the pairs from @p0: each positive pair plus
 * NEGATIVES drawn words.  Returns the loss tensor (the caller frees it) or
 * NULL. */
static kiln_tensor *train_step(skipgram *s, kiln_optimizer *opt,
                               const corpus *c, const int32_t *pairs,
                               int64_t B, uint64_t *rng, int32_t *centers,
                               int32_t *contexts, float *targets)
{
    enum { K1 = 1 + NEGATIVES };
    for (int64_t b = 0; b < B; b++) {
        centers[b] = pairs[2 * b];
        contexts[b * K1] = pairs[2 * b + 1];
        targets[b * K1] = 1;
        for (int k = 1; k < K1; k++) {
            contexts[b * K1 + k] =
                c->negatives[next_random(rng) % NEGATIVE_TABLE];
            targets[b * K1 + k] = 0;
        }
    }
    kiln_tensor *fed[3] = {
        kiln_tensor_from_data(ctx, KILN_I32, 1, &B, centers,
                              sizeof *centers * (size_t)B),
        kiln_tensor_from_data(ctx, KILN_I32, 2, (int64_t[]){B, K1}, contexts,
                              sizeof *contexts * (size_t)(B * K1)),
        kiln_tensor_from_data(ctx, KILN_F32, 2, (int64_t[]){B, K1}, targets,
                              sizeof *targets * (size_t)(B * K1)),
    };
    kiln_feed feeds[3] = {{s->center, fed[0]}, {s->context, fed[1]},
                          {s->target, fed[2]}};
    kiln_node *fetch[3] = {s->loss, s->grads[0], s->grads[1]};
    kiln_tensor *out[3] = {NULL};
    kiln_tensor *params[2] = {kiln_g_variable_tensor(s->w_in),
                              kiln_g_variable_tensor(s->w_out)};
    kiln_status st = kiln_graph_run(s->g, 3, feeds, 3, fetch, out);
    if (st == KILN_OK)
        st = kiln_optimizer_step(opt, 2, params, out + 1, -1.0);
    for (int i = 0; i < 3; i++)
        kiln_tensor_free(fed[i]);
    kiln_tensor_free(out[1]);
    kiln_tensor_free(out[2]);
    if (st != KILN_OK) {
        kiln_tensor_free(out[0]);
        return NULL;
    }
    return out[0];
}

/* Trains the skip-gram on @c; fills epoch_loss[epochs].  Prints the
 * progress, the neighbours and the summary.  Returns 1 when the loss fell,
 * 0 if not, -1 on an error. */
static int train(const demo_args *a, const corpus *c, double *epoch_loss)
{
    skipgram s = {0};
    if (build_skipgram(&s, c->v.size, a->seed)) {
        fprintf(stderr, "word-analogy: building the graph: %s\n",
                kiln_error_message(ctx));
        kiln_graph_free(s.g);
        return -1;
    }
    if (a->load && load_tables(a->load, &s, &c->v)) {
        kiln_graph_free(s.g);
        return -1;
    }
    if (a->load)
        printf("loaded %s\n", a->load);
    kiln_optimizer *opt = kiln_optimizer_new(
        ctx, &(kiln_optimizer_config){.kind = KILN_OPT_ADAM, .lr = a->lr});
    int64_t B = a->batch;
    size_t len = (size_t)(c->length ? c->length : 1);
    int32_t *kept = malloc(sizeof *kept * len);
    int32_t *pairs = malloc(sizeof *pairs * 4 * WINDOW * len);
    int32_t *centers = malloc(sizeof *centers * (size_t)B);
    int32_t *contexts = malloc(sizeof *contexts * (size_t)B *
                               (1 + NEGATIVES));
    float *targets = malloc(sizeof *targets * (size_t)B * (1 + NEGATIVES));
    uint64_t rng = a->seed;
    double t0 = seconds_now();
    int64_t steps = 0, total_pairs = 0;
    uint64_t kernels = 0;
    int error = !opt || !kept || !pairs || !centers || !contexts || !targets;
    for (int epoch = 0; !error && epoch < a->epochs; epoch++) {
        int64_t np = epoch_pairs(c, &rng, kept, pairs), nb = 0;
        double sum = 0;
        /* Full batches only; the loss is read back (a wait for the
         * device) every 10th step. */
        for (int64_t p0 = 0; !error && p0 + B <= np; p0 += B, nb++) {
            kiln_tensor *loss = train_step(&s, opt, c, pairs + 2 * p0, B,
                                           &rng, centers, contexts, targets);
            float l = 0;
            error = !loss || (nb % 10 == 0 &&
                              kiln_tensor_read(loss, &l, sizeof l) != KILN_OK);
            sum += l;
            kiln_tensor_free(loss);
        }
        steps += nb;
        total_pairs += nb * B;
        epoch_loss[epoch] = nb ? sum / (double)((nb + 9) / 10) : NAN;
        if (!error && (epoch == 0 || epoch % 5 == 4 || epoch == a->epochs - 1))
            printf("  epoch %3d/%d: %lld pairs, loss %.4f, %.1f s\n",
                   epoch + 1, a->epochs, (long long)np, epoch_loss[epoch],
                   seconds_now() - t0);
    }
    double seconds = seconds_now() - t0;
    if (!error) {
        kiln_graph_stats gs;
        kiln_graph_get_stats(s.g, &gs);
        kernels = gs.kernels;
        /* Query words: the most frequent words of 6 letters or more. */
        int32_t queries[SHOW];
        int nq = 0;
        for (int i = 0; i < c->v.size && nq < SHOW; i++)
            if (strlen(c->v.words[i]) >= 6)
                queries[nq++] = i;
        printf("nearest words (cosine of the input vectors):\n");
        error = neighbours(kiln_g_variable_tensor(s.w_in), &c->v, queries,
                           nq) != 0;
    }
    if (!error && a->save) {
        if (save_tables(a->save, &s, &c->v) == 0)
            printf("saved %s\n", a->save);
        else
            fprintf(stderr, "word-analogy: --save: %s\n",
                    kiln_error_message(ctx));
    }
    int rc = -1;
    if (!error) {
        int e = a->epochs - 1;
        int fell = epoch_loss[e] < epoch_loss[0];
        const kiln_device_info *d = kiln_context_device(ctx);
        printf("\nsummary: word-analogy on %s [%s]\n", d->name,
               kiln_backend_name(d->backend));
        printf("  skip-gram loss %.4f -> %.4f (first and last epoch), "
               "fell: %s\n", epoch_loss[0], epoch_loss[e],
               fell ? "yes" : "NO");
        printf("  %lld steps in %.1f s, %.0f pairs/s, %llu kernels per step "
               "(+ 2 for the optimizer)\n", (long long)steps, seconds,
               (double)total_pairs / seconds, (unsigned long long)kernels);
        rc = fell;
    } else {
        fprintf(stderr, "word-analogy: training: %s\n",
                kiln_error_message(ctx));
    }
    free(kept);
    free(pairs);
    free(centers);
    free(contexts);
    free(targets);
    kiln_optimizer_free(opt);
    kiln_graph_free(s.g);
    return rc;
}

/* Part 2: reads the text, trains, draws the loss curve.  1 when the loss
 * fell and the picture was written, 0 if not, -1 on an error. */
static int skipgram_demo(const demo_args *a)
{
    const char *path = a->data ? a->data : "/usr/share/common-licenses/GPL-3";
    int64_t nwords = 0;
    char **words = read_words(path, a->limit, &nwords);
    if (!words)
        return -1;
    corpus c = {0};
    int rc = -1;
    double *epoch_loss = malloc(sizeof *epoch_loss * (size_t)a->epochs);
    if (!epoch_loss || build_corpus(words, nwords, &c))
        fprintf(stderr, "word-analogy: out of memory\n");
    else if (c.v.size < 2 * SHOW)
        fprintf(stderr, "word-analogy: %s: only %d words seen %d times or "
                "more\n", path, c.v.size, MIN_COUNT);
    else {
        printf("\n2. skip-gram with negative sampling on %s: %lld words, "
               "vocabulary %d (seen >= %d times)\n", path, (long long)nwords,
               c.v.size, MIN_COUNT);
        printf("window %d, %d negatives, %d-dim vectors, batch %lld, Adam "
               "%g, %d epochs\n", WINDOW, NEGATIVES, DIM,
               (long long)a->batch, a->lr, a->epochs);
        rc = train(a, &c, epoch_loss);
    }
    if (rc >= 0) {
        char svg[1024];
        const char *name = "training loss";
        const double *curve = epoch_loss;
        int written = !demo_svg_curves(demo_path(a, "loss.svg", svg,
                                                 sizeof svg),
                                       "word-analogy: skip-gram with "
                                       "negative sampling",
                                       "sigmoid cross-entropy", 1, &name,
                                       &curve, a->epochs);
        printf("  pictures: %s %s\n", svg, written ? "written" : "NOT written");
        rc = rc && written;
    }
    free(epoch_loss);
    corpus_free(&c);
    for (int64_t i = 0; i < nwords; i++)
        free(words[i]);
    free(words);
    return rc;
}

int main(int argc, char **argv)
{
    demo_args a = {.epochs = 30, .batch = 256, .lr = 5e-3, .seed = 1};
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress shows when piped too */
    if (!demo_parse_args(argc, argv, &a,
                         "usage: word-analogy [options]: king - man + woman "
                         "with the course's vectors, then a skip-gram\n"
                         "on a text file (--data FILE, default "
                         "/usr/share/common-licenses/GPL-3)\n"))
        return 2;
    if (a.fast) { /* the few-second variant the tests run */
        a.epochs = 3;
        a.lr = 0.02; /* few steps: a larger step spreads the vectors */
        if (!a.limit)
            a.limit = 2000;
    }
    ctx = demo_open(&a, "word-analogy");
    if (!ctx)
        return 2;
    int found = analogy();
    int fell = found >= 0 ? skipgram_demo(&a) : -1;
    if (found >= 0 && fell >= 0 && kiln_status_of(ctx) != KILN_OK) {
        fprintf(stderr, "word-analogy: %s\n", kiln_error_message(ctx));
        fell = -1;
    }
    if (found < 0 || fell < 0) {
        if (found < 0)
            fprintf(stderr, "word-analogy: %s\n", kiln_error_message(ctx));
        kiln_context_destroy(ctx);
        return 2;
    }
    printf("%s\n", found && fell ? "PASS: king - man + woman = queen, the "
                                   "skip-gram loss fell"
                                 : "FAIL");
    kiln_context_destroy(ctx);
    return found && fell ? 0 : 1;
}
