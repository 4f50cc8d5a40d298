/*
 * json.c - a strict JSON reader into a tree, and string escaping for
 * writers (json.h).  Recursive descent; the depth limit bounds the stack.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"

typedef struct parser {
    const unsigned char *s;
    size_t len, pos;
    int depth;
    char *err;
    size_t err_size;
    int failed;
} parser;

static void fail(parser *p, size_t at, const char *what)
{
    if (!p->failed)
        snprintf(p->err, p->err_size, "at byte %zu: %s", at, what);
    p->failed = 1;
}

/* ---- buffers ------------------------------------------------------------ */

void kiln__buf_add(kiln_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void kiln__buf_printf(kiln_buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        b->failed = 1; /* only used for short numeric fields */
    else
        kiln__buf_add(b, tmp, (size_t)n);
}

void kiln__buf_json_string(kiln_buf *b, const char *s)
{
    kiln__buf_add(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        const char *e = NULL;
        switch (*c) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        default:
            if (*c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *c);
                e = esc;
            }
        }
        if (e)
            kiln__buf_add(b, e, strlen(e));
        else
            kiln__buf_add(b, (const char *)c, 1);
    }
    kiln__buf_add(b, "\"", 1);
}

void kiln__buf_free(kiln_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* ---- UTF-8 -------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at @s (at most @n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    return len;
}

int kiln__utf8_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq(u + i, len - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

static void utf8_put(kiln_buf *b, unsigned cp)
{
    char o[4];
    size_t n;
    if (cp < 0x80) {
        o[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        o[0] = (char)(0xF0 | (cp >> 18));
        o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    kiln__buf_add(b, o, n);
}

/* ---- the parser --------------------------------------------------------- */

static void skip_ws(parser *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

/* Four hex digits at p->pos; -1 if not. */
static long hex4(parser *p)
{
    long v = 0;
    if (p->len - p->pos < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        unsigned c = p->s[p->pos + i];
        int d = c >= '0' && c <= '9'   ? (int)(c - '0')
                : c >= 'a' && c <= 'f' ? (int)(c - 'a' + 10)
                : c >= 'A' && c <= 'F' ? (int)(c - 'A' + 10)
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    p->pos += 4;
    return v;
}

/* After a backslash: appends the escaped character to @b. */
static void parse_escape(parser *p, kiln_buf *b)
{
    size_t at = p->pos - 1;
    if (p->pos >= p->len)
        return fail(p, at, "unterminated escape in a string");
    char c = (char)p->s[p->pos++];
    static const char in[] = "\"\\/bfnrt", out[] = "\"\\/\b\f\n\r\t";
    const char *simple = c ? strchr(in, c) : NULL;
    if (simple) {
        kiln__buf_add(b, &out[simple - in], 1);
        return;
    }
    if (c != 'u')
        return fail(p, at, "bad escape in a string");
    long cp = hex4(p);
    if (cp < 0)
        return fail(p, at, "bad \\u escape (needs 4 hex digits)");
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return fail(p, at, "unpaired low surrogate in a \\u escape");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        long lo = -1;
        if (p->len - p->pos >= 2 && p->s[p->pos] == '\\' &&
            p->s[p->pos + 1] == 'u') {
            p->pos += 2;
            lo = hex4(p);
        }
        if (lo < 0xDC00 || lo > 0xDFFF)
            return fail(p, at, "high surrogate not followed by a low one");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (cp == 0)
        return fail(p, at, "\\u0000 in a string (not representable)");
    utf8_put(b, (unsigned)cp);
}

/* At the opening quote: returns the unescaped string, malloc'd, or NULL. */
static char *parse_string(parser *p)
{
    size_t start = p->pos++;
    kiln_buf b = {0};
    kiln__buf_add(&b, "", 0);
    while (!p->failed) {
        if (p->pos >= p->len) {
            fail(p, start, "unterminated string");
            break;
        }
        unsigned char c = p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c == '\\') {
            p->pos++;
            parse_escape(p, &b);
        } else if (c < 0x20) {
            fail(p, p->pos, "control character in a string");
        } else {
            size_t k = utf8_seq(p->s + p->pos, p->len - p->pos);
            if (!k)
                fail(p, p->pos, "invalid UTF-8 in a string");
            else
                kiln__buf_add(&b, (const char *)p->s + p->pos, k);
            p->pos += k;
        }
    }
    if (b.failed && !p->failed)
        fail(p, start, "out of memory");
    if (p->failed) {
        kiln__buf_free(&b);
        return NULL;
    }
    return b.data;
}

static void parse_number(parser *p, kiln_json *v)
{
    size_t start = p->pos;
    const unsigned char *s = p->s;
    /* @i is evaluated more than once: no side effects in it. */
#define DIGIT(i) ((i) < p->len && s[i] >= '0' && s[i] <= '9')
    if (p->pos < p->len && s[p->pos] == '-')
        p->pos++;
    if (!DIGIT(p->pos))
        return fail(p, start, "bad number");
    if (s[p->pos] == '0')
        p->pos++;
    else
        while (DIGIT(p->pos))
            p->pos++;
    if (p->pos < p->len && s[p->pos] == '.') {
        p->pos++;
        if (!DIGIT(p->pos))
            return fail(p, start, "bad number");
        while (DIGIT(p->pos))
            p->pos++;
    }
    if (p->pos < p->len && (s[p->pos] == 'e' || s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (s[p->pos] == '+' || s[p->pos] == '-'))
            p->pos++;
        if (!DIGIT(p->pos))
            return fail(p, start, "bad number");
        while (DIGIT(p->pos))
            p->pos++;
    }
#undef DIGIT
    v->type = KILN_JSON_NUMBER;
    v->str = strndup((const char *)s + start, p->pos - start);
    if (!v->str)
        fail(p, start, "out of memory");
}

static void parse_value(parser *p, kiln_json *v);

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Duplicate keys make a file ambiguous (which entry wins?): refuse them. */
static void check_duplicates(parser *p, kiln_json *v)
{
    if (v->n < 2)
        return;
    char **k = malloc((size_t)v->n * sizeof *k);
    if (!k)
        return fail(p, v->pos, "out of memory");
    memcpy(k, v->keys, (size_t)v->n * sizeof *k);
    qsort(k, (size_t)v->n, sizeof *k, cmp_key);
    for (int i = 1; i < v->n; i++)
        if (strcmp(k[i - 1], k[i]) == 0) {
            char msg[128];
            snprintf(msg, sizeof msg, "duplicate key \"%.60s\" in an object",
                     k[i]);
            fail(p, v->pos, msg);
            break;
        }
    free(k);
}

/* Grows the item (and key) arrays of @v for one more entry. */
static int grow(parser *p, kiln_json *v, int *cap)
{
    if (v->n < *cap)
        return 0;
    int ncap = *cap ? *cap * 2 : 4;
    kiln_json *items = realloc(v->items, (size_t)ncap * sizeof *items);
    if (items)
        v->items = items;
    if (items && v->type == KILN_JSON_OBJECT) {
        char **keys = realloc(v->keys, (size_t)ncap * sizeof *keys);
        if (!keys)
            items = NULL;
        else
            v->keys = keys;
    }
    if (!items) {
        fail(p, p->pos, "out of memory");
        return -1;
    }
    *cap = ncap;
    return 0;
}

/* At '[' or '{'. */
static void parse_container(parser *p, kiln_json *v, int object)
{
    char close = object ? '}' : ']';
    int cap = 0;
    v->type = object ? KILN_JSON_OBJECT : KILN_JSON_ARRAY;
    if (++p->depth > KILN_JSON_MAX_DEPTH)
        return fail(p, p->pos, "nesting too deep");
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        p->depth--;
        return;
    }
    while (!p->failed) {
        skip_ws(p);
        if (grow(p, v, &cap) != 0)
            return;
        if (object) {
            if (p->pos >= p->len || p->s[p->pos] != '"')
                return fail(p, p->pos, "expected a string key in an object");
            char *key = parse_string(p);
            if (!key)
                return;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                free(key);
                return fail(p, p->pos, "expected ':' after an object key");
            }
            p->pos++;
            v->keys[v->n] = key;
        }
        memset(&v->items[v->n], 0, sizeof v->items[0]);
        v->n++; /* counted now so that kiln__json_free sees it */
        parse_value(p, &v->items[v->n - 1]);
        if (p->failed)
            return;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            p->depth--;
            if (object)
                check_duplicates(p, v);
            return;
        }
        return fail(p, p->pos, object ? "expected ',' or '}' in an object"
                                       : "expected ',' or ']' in an array");
    }
}

static int literal(parser *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return 0;
    p->pos += n;
    return 1;
}

static void parse_value(parser *p, kiln_json *v)
{
    skip_ws(p);
    v->pos = p->pos;
    if (p->pos >= p->len)
        return fail(p, p->pos, "unexpected end of text, expected a value");
    unsigned char c = p->s[p->pos];
    if (c == '{' || c == '[') {
        parse_container(p, v, c == '{');
    } else if (c == '"') {
        v->type = KILN_JSON_STRING;
        v->str = parse_string(p);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        parse_number(p, v);
    } else if (literal(p, "true") || literal(p, "false")) {
        v->type = KILN_JSON_BOOL;
        v->boolean = c == 't';
    } else if (literal(p, "null")) {
        v->type = KILN_JSON_NULL;
    } else {
        fail(p, p->pos, "unexpected character, expected a value");
    }
}

static void free_children(kiln_json *v)
{
    for (int i = 0; i < v->n; i++) {
        free_children(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
}

void kiln__json_free(kiln_json *v)
{
    if (!v)
        return;
    free_children(v);
    free(v);
}

kiln_json *kiln__json_parse(const char *text, size_t len, char *err,
                            size_t err_size)
{
    parser p = {(const unsigned char *)text, len, 0, 0, err, err_size, 0};
    kiln_json *v = calloc(1, sizeof *v);
    if (!v) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    parse_value(&p, v);
    skip_ws(&p);
    if (!p.failed && p.pos != p.len)
        fail(&p, p.pos, "trailing characters after the JSON value");
    if (p.failed) {
        kiln__json_free(v);
        return NULL;
    }
    return v;
}

const kiln_json *kiln__json_get(const kiln_json *obj, const char *key)
{
    if (!obj || obj->type != KILN_JSON_OBJECT)
        return NULL;
    for (int i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return &obj->items[i];
    return NULL;
}

int kiln__json_uint(const kiln_json *v, uint64_t max, uint64_t *out)
{
    uint64_t x = 0;
    if (!v || v->type != KILN_JSON_NUMBER)
        return -1;
    for (const char *c = v->str; *c; c++) {
        if (*c < '0' || *c > '9')
            return -1;
        unsigned d = (unsigned)(*c - '0');
        if (d > max || x > (max - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}
