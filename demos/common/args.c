/*
 * args.c - the demos' common command-line options and device opening.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "demo.h"

/* mkdir -p @path; 0, or -1 with errno set. */
static int make_dirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return -1;
        buf[i] = c;
    }
    return 0;
}

int demo_parse_args(int argc, char **argv, demo_args *a, const char *usage)
{
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--fast")) {
            a->fast = 1;
            continue;
        }
        if (!strcmp(o, "--help") || !v) {
            printf("%s", usage);
            printf("common options: --device SPEC --epochs N --batch N --lr X "
                   "--seed N --save FILE --load FILE --data DIR --out DIR "
                   "--limit N --fast\n");
            return 0;
        }
        if (!strcmp(o, "--device"))
            a->device = v;
        else if (!strcmp(o, "--epochs"))
            a->epochs = atoi(v);
        else if (!strcmp(o, "--batch"))
            a->batch = atoll(v);
        else if (!strcmp(o, "--lr"))
            a->lr = atof(v);
        else if (!strcmp(o, "--seed"))
            a->seed = strtoull(v, NULL, 0);
        else if (!strcmp(o, "--save"))
            a->save = v;
        else if (!strcmp(o, "--load"))
            a->load = v;
        else if (!strcmp(o, "--data"))
            a->data = v;
        else if (!strcmp(o, "--out"))
            a->out = v;
        else if (!strcmp(o, "--limit"))
            a->limit = atoll(v);
        else {
            printf("unknown option %s\n%s", o, usage);
            return 0;
        }
        i++;
    }
    if (a->epochs < 1 || a->batch < 1 || !(a->lr > 0)) {
        printf("--epochs and --batch must be >= 1 and --lr > 0\n%s", usage);
        return 0;
    }
    /* The pictures' folder is made when missing, like mkdir -p. */
    if (a->out && make_dirs(a->out) != 0) {
        printf("--out %s: cannot create the folder: %s\n", a->out,
               strerror(errno));
        return 0;
    }
    return 1;
}

kiln_context *demo_open(const demo_args *a, const char *program)
{
    kiln_context *ctx =
        kiln_context_create(&(kiln_context_options){.device = a->device});
    if (!ctx || kiln_status_of(ctx) != KILN_OK) {
        fprintf(stderr, "%s: cannot open the device: %s\n", program,
                kiln_error_message(ctx));
        kiln_context_destroy(ctx);
        return NULL;
    }
    const kiln_device_info *d = kiln_context_device(ctx);
    printf("device: %s [%s]\n", d->name, kiln_backend_name(d->backend));
    return ctx;
}

const char *demo_path(const demo_args *a, const char *name, char *buf,
                      size_t size)
{
    snprintf(buf, size, "%s/%s", a->out ? a->out : ".", name);
    return buf;
}
