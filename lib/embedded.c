/* embedded.c - looking up files compiled into the library. */
#include "embedded.h"

#include <string.h>

const kiln_embedded_file *kiln_embedded_find(const kiln_embedded_file *table,
                                             const char *name)
{
    for (; table->name; table++)
        if (strcmp(table->name, name) == 0)
            return table;
    return NULL;
}
