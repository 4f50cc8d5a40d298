/*
 * augment.c - random shifts of the training images, new every epoch: the
 * digit demos' augmentation (a digit moved by a pixel or two is the same
 * digit; mirrored it may not be, so no flips here).
 */
#include <stdlib.h>

#include "demo.h"

uint64_t demo_next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void demo_augment_shift(kiln_dataset *train, int64_t ntrain, int64_t epoch,
                        uint64_t seed)
{
    /* The images as loaded, so each epoch shifts the originals. */
    static float *original;
    static const float *owner;
    const int C = (int)train->shape[0], H = (int)train->shape[1],
              W = (int)train->shape[2], shift = 2;
    const size_t size = (size_t)C * H * W;
    if (train->ndim != 3)
        return;
    if (owner != train->x) {
        free(original);
        original = malloc(sizeof *original * size * (size_t)ntrain);
        owner = original ? train->x : NULL;
        if (!original)
            return; /* out of memory: no augmentation */
        for (size_t i = 0; i < size * (size_t)ntrain; i++)
            original[i] = train->x[i];
    }
    uint64_t state = seed ^ ((uint64_t)epoch * 0xD1B54A32D192ED03ull);
    for (int64_t s = 0; s < ntrain; s++) {
        uint64_t r = demo_next_random(&state);
        int dx = (int)(r % 5) - shift, dy = (int)(r / 5 % 5) - shift;
        const float *src = original + (size_t)s * size;
        float *dst = train->x + (size_t)s * size;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    int sx = x - dx, sy = y - dy;
                    /* Background (0) moves in at the edges. */
                    dst[(c * H + y) * W + x] =
                        sx < 0 || sy < 0 || sx >= W || sy >= H
                            ? 0.0f
                            : src[(c * H + sy) * W + sx];
                }
    }
}
