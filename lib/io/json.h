/*
 * json.h - the small JSON reader and writer that safetensors headers need.
 *
 * The reader parses untrusted text into a tree and never crashes on bad
 * input: it checks UTF-8, escapes, nesting (at most KILN_JSON_MAX_DEPTH),
 * duplicate object keys and trailing garbage, and reports the first problem
 * with its byte position.  Strings are unescaped (\uXXXX and surrogate pairs
 * to UTF-8); a string holding U+0000 is refused, because C strings cannot
 * carry it.  Numbers are kept as their text; kiln__json_uint() reads the
 * non-negative integers that safetensors uses.
 */
#ifndef KILN_IO_JSON_H
#define KILN_IO_JSON_H

#include <stddef.h>
#include <stdint.h>

#define KILN_JSON_MAX_DEPTH 32

typedef enum kiln_json_type {
    KILN_JSON_NULL,
    KILN_JSON_BOOL,
    KILN_JSON_NUMBER,
    KILN_JSON_STRING,
    KILN_JSON_ARRAY,
    KILN_JSON_OBJECT,
} kiln_json_type;

typedef struct kiln_json {
    kiln_json_type type;
    size_t pos;               /* byte offset of the value in the text     */
    int boolean;
    char *str;                /* STRING: unescaped; NUMBER: its text      */
    int n;                    /* ARRAY / OBJECT: number of items          */
    struct kiln_json *items;  /* ARRAY / OBJECT: the values               */
    char **keys;              /* OBJECT: the keys, unescaped              */
} kiln_json;

/**
 * Parses @len bytes of @text as one JSON value surrounded by optional
 * whitespace.  Returns a tree to free with kiln__json_free, or NULL with a
 * message in @err (@err_size bytes).
 */
kiln_json *kiln__json_parse(const char *text, size_t len, char *err,
                            size_t err_size);
void kiln__json_free(kiln_json *v);

/** Item of object @obj named @key, or NULL. */
const kiln_json *kiln__json_get(const kiln_json *obj, const char *key);

/** A NUMBER that is a plain non-negative integer (no sign, fraction or
 *  exponent) of at most @max: 0 with *@out set, else -1. */
int kiln__json_uint(const kiln_json *v, uint64_t max, uint64_t *out);

/** Is @s (@len bytes) well-formed UTF-8 (no overlongs, no surrogates)? */
int kiln__utf8_valid(const char *s, size_t len);

/** A growable byte buffer for writing JSON. */
typedef struct kiln_buf {
    char *data;
    size_t len, cap;
    int failed;               /* an allocation failed; data is incomplete */
} kiln_buf;

void kiln__buf_add(kiln_buf *b, const char *s, size_t n);
void kiln__buf_printf(kiln_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/** Appends @s as a quoted JSON string: quotes, backslashes and control
 *  characters escaped, other bytes (UTF-8) as they are. */
void kiln__buf_json_string(kiln_buf *b, const char *s);
void kiln__buf_free(kiln_buf *b);

#endif /* KILN_IO_JSON_H */
