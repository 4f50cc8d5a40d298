/* embedded.h - files compiled into the library (kernel sources, SPIR-V). */
#ifndef KILN_EMBEDDED_H
#define KILN_EMBEDDED_H

#include <stddef.h>

typedef struct kiln_embedded_file {
    const char *name;            /* base name without extension          */
    const unsigned char *data;   /* NUL-terminated, 4-byte aligned        */
    size_t size;                 /* bytes, without the NUL                */
} kiln_embedded_file;

/* kernels/<family>.cl, named "<family>"; ends with a NULL name. */
extern const kiln_embedded_file kiln_cl_sources[];
/* shaders/<family>.comp variants, named "<family>_<T>[_<U>]". */
extern const kiln_embedded_file kiln_spirv_modules[];

/** The entry called @name in @table, or NULL. */
const kiln_embedded_file *kiln_embedded_find(const kiln_embedded_file *table,
                                             const char *name);

#endif
