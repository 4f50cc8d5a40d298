/*
 * augment.c - the digit demos' augmentation, new every epoch: random shifts
 * (a digit moved by a pixel or two is the same digit) or small random
 * affine maps (a little rotated, scaled, sheared and moved: still the same
 * digit, as handwriting varies that way).  Never flips: a mirrored digit
 * may be another digit.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "demo.h"

uint64_t demo_next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1) from the top 53 bits of the next number. */
static double uniform_pm1(uint64_t *state)
{
    return (double)(demo_next_random(state) >> 11) * 0x1.0p-52 - 1.0;
}

/* The images of @train as loaded, copied at the first call, so each epoch
 * transforms the originals, not last epoch's transformed copies.  NULL when
 * out of memory (then the caller leaves the images as they are). */
static const float *originals(const kiln_dataset *train, int64_t ntrain)
{
    static float *original;
    static const float *owner;
    const size_t n = (size_t)train->shape[0] * (size_t)train->shape[1] *
                     (size_t)train->shape[2] * (size_t)ntrain;
    if (owner != train->x) {
        free(original);
        original = malloc(sizeof *original * n);
        owner = original ? train->x : NULL;
        if (!original)
            return NULL;
        for (size_t i = 0; i < n; i++)
            original[i] = train->x[i];
    }
    return original;
}

/* dst(p) = src(inv (p - c - t) + c) with c the image centre, sampled
 * bilinearly; background (0) moves in from outside the image.  With an
 * identity @inv and whole-pixel @t it copies pixels exactly. */
static void warp(const float *src, float *dst, int C, int H, int W,
                 const double inv[4], double tx, double ty)
{
    const double cx = (W - 1) / 2.0, cy = (H - 1) / 2.0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double u = x - cx - tx, v = y - cy - ty;
            double sx = inv[0] * u + inv[1] * v + cx;
            double sy = inv[2] * u + inv[3] * v + cy;
            double fx = floor(sx), fy = floor(sy);
            int x0 = (int)fx, y0 = (int)fy;
            double ax = sx - fx, ay = sy - fy;
            /* The four taps' weights; a tap outside the image reads 0. */
            const double wt[4] = {(1 - ax) * (1 - ay), ax * (1 - ay),
                                  (1 - ax) * ay, ax * ay};
            for (int c = 0; c < C; c++) {
                const float *plane = src + (size_t)c * H * W;
                double sum = 0;
                for (int k = 0; k < 4; k++) {
                    int px = x0 + (k & 1), py = y0 + (k >> 1);
                    if (wt[k] != 0 && px >= 0 && py >= 0 && px < W && py < H)
                        sum += wt[k] * plane[py * W + px];
                }
                dst[((size_t)c * H + y) * W + x] = (float)sum;
            }
        }
}

void demo_augment_shift(kiln_dataset *train, int64_t ntrain, int64_t epoch,
                        uint64_t seed)
{
    static const double identity[4] = {1, 0, 0, 1};
    if (train->ndim != 3)
        return;
    const float *original = originals(train, ntrain);
    if (!original)
        return; /* out of memory: no augmentation */
    const int C = (int)train->shape[0], H = (int)train->shape[1],
              W = (int)train->shape[2], shift = 2;
    const size_t size = (size_t)C * H * W;
    uint64_t state = seed ^ ((uint64_t)epoch * 0xD1B54A32D192ED03ull);
    for (int64_t s = 0; s < ntrain; s++) {
        uint64_t r = demo_next_random(&state);
        int dx = (int)(r % 5) - shift, dy = (int)(r / 5 % 5) - shift;
        warp(original + (size_t)s * size, train->x + (size_t)s * size, C, H,
             W, identity, dx, dy);
    }
}

void demo_augment_affine(kiln_dataset *train, int64_t ntrain, int64_t epoch,
                         uint64_t seed)
{
    /* Ranges (uniform): the variation of handwriting, small enough that a
     * 6 stays a 6 and a 1 does not become a 7. */
    const double degree = 3.14159265358979323846 / 180;
    const double rotate = 12 * degree, scale = 0.10, shear = 0.15,
                 shift = 2.0;
    if (train->ndim != 3)
        return;
    const float *original = originals(train, ntrain);
    if (!original)
        return; /* out of memory: no augmentation */
    if (epoch == 0)
        printf("augmentation: affine maps about the centre, bilinear: "
               "rotation up to %.0f degrees, scale 1 +- %.2f, shear +- %.2f, "
               "shift up to %.0f pixels each way\n", rotate / degree,
               scale, shear, shift);
    const int C = (int)train->shape[0], H = (int)train->shape[1],
              W = (int)train->shape[2];
    const size_t size = (size_t)C * H * W;
    uint64_t state = seed ^ ((uint64_t)epoch * 0xD1B54A32D192ED03ull);
    for (int64_t s = 0; s < ntrain; s++) {
        double a = rotate * uniform_pm1(&state);
        double k = 1 + scale * uniform_pm1(&state);
        double h = shear * uniform_pm1(&state);
        double tx = shift * uniform_pm1(&state);
        double ty = shift * uniform_pm1(&state);
        /* The forward map is rotation(a) * shear(h) * k, i.e.
         * k [cos a, h cos a - sin a; sin a, h sin a + cos a]
         * (determinant k^2); warp needs its inverse. */
        double ca = cos(a), sa = sin(a);
        double f[4] = {k * ca, k * (h * ca - sa), k * sa, k * (h * sa + ca)};
        double det = f[0] * f[3] - f[1] * f[2];
        const double inv[4] = {f[3] / det, -f[1] / det, -f[2] / det,
                               f[0] / det};
        warp(original + (size_t)s * size, train->x + (size_t)s * size, C, H,
             W, inv, tx, ty);
    }
}
