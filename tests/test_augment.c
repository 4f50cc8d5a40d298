/*
 * test_augment.c - the digit demos' augmentation (demos/common/augment.c).
 *
 * Host-only: no device.  demo_augment_shift must move every image by a
 * whole number of pixels, at most 2 each way, background moving in, and
 * use all 25 shifts; demo_augment_affine must stay within the images'
 * value range, repeat itself for the same seed and epoch, start from the
 * originals every epoch, and move images as its stated ranges say:
 * measured on Gaussian blobs, mass (~ scale^2) within 1 +- 0.1 squared,
 * the centre moved by at most 2 pixels each way, an elongated blob's axis
 * turned by at most 12 degrees, and each of these actually varying.
 *
 * usage: test_augment
 */
#include "demo.h"
#include "harness.h"

enum { H = 28, W = 28, SIZE = H * W, N = 400 };

static kiln_dataset images(float *x, int64_t count)
{
    return (kiln_dataset){.count = count, .ndim = 3, .shape = {1, H, W},
                          .x = x};
}

/* Is @out @in moved by (dx, dy), zeros where nothing moved in? */
static int shifted(const float *in, const float *out, int dx, int dy)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int sx = x - dx, sy = y - dy;
            float want = sx < 0 || sy < 0 || sx >= W || sy >= H
                             ? 0.0f : in[sy * W + sx];
            if (out[y * W + x] != want)
                return 0;
        }
    return 1;
}

/* Returns its buffer, freed by the caller at the end: the augmentation
 * knows the images it copied by their address, which a new buffer could
 * otherwise reuse. */
static float *test_shift(void)
{
    float *orig = malloc(sizeof *orig * SIZE * N);
    float *x = malloc(sizeof *x * SIZE * N);
    uint64_t r = 7;
    for (int i = 0; i < SIZE * N; i++) /* random pixels: shifts are unique */
        orig[i] = x[i] = (float)(demo_next_random(&r) >> 40) / (1 << 24);
    kiln_dataset d = images(x, N);
    demo_augment_shift(&d, N, 3, 1);
    int seen[25] = {0}, unmatched = 0;
    for (int s = 0; s < N; s++) {
        int found = -1;
        for (int k = 0; k < 25 && found < 0; k++)
            if (shifted(orig + s * SIZE, x + s * SIZE, k % 5 - 2, k / 5 - 2))
                found = k;
        unmatched += found < 0;
        if (found >= 0)
            seen[found]++;
    }
    int used = 0;
    for (int k = 0; k < 25; k++)
        used += seen[k] > 0;
    CHECK(unmatched == 0, "shift: %d images not a whole-pixel shift of at "
          "most 2 of their originals", unmatched);
    CHECK(used == 25, "shift: only %d of the 25 shifts used in %d images",
          used, N);
    free(orig);
    return x;
}

/* A Gaussian blob at the centre: standard deviations @sx, @sy. */
static void blob(float *img, double sx, double sy)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double u = (x - (W - 1) / 2.0) / sx, v = (y - (H - 1) / 2.0) / sy;
            img[y * W + x] = (float)exp(-(u * u + v * v) / 2);
        }
}

/* Mass, centroid and the principal axis's angle (degrees, in (-90, 90]). */
static void moments(const float *img, double *mass, double *cx, double *cy,
                    double *angle)
{
    double m = 0, mx = 0, my = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            m += img[y * W + x];
            mx += img[y * W + x] * x;
            my += img[y * W + x] * y;
        }
    *mass = m;
    *cx = mx / m;
    *cy = my / m;
    double sxx = 0, syy = 0, sxy = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double u = x - *cx, v = y - *cy, p = img[y * W + x];
            sxx += p * u * u;
            syy += p * v * v;
            sxy += p * u * v;
        }
    *angle = 0.5 * atan2(2 * sxy, sxx - syy) * 180 / 3.14159265358979323846;
}

static void test_affine(void)
{
    float *orig = malloc(sizeof *orig * SIZE * N);
    float *x = malloc(sizeof *x * SIZE * N);
    float *first = malloc(sizeof *first * SIZE * N);
    /* Round blobs (mass, centre) in the first half, blobs elongated along
     * x (angle; shear along x leaves that axis alone) in the second. */
    for (int s = 0; s < N; s++)
        blob(orig + s * SIZE, s < N / 2 ? 3 : 4, s < N / 2 ? 3 : 1.2);
    memcpy(x, orig, sizeof *x * SIZE * N);
    kiln_dataset d = images(x, N);

    demo_augment_affine(&d, N, 0, 5);
    memcpy(first, x, sizeof *x * SIZE * N);
    float lo = 1, hi = 0;
    for (int i = 0; i < SIZE * N; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    CHECK(lo >= 0 && hi <= 1, "affine: values [%g, %g] outside [0, 1]", lo,
          hi);

    double m0, cx0, cy0, a0;
    moments(orig, &m0, &cx0, &cy0, &a0);
    double rmin = 9, rmax = 0, dmax = 0, dxmin = 9, dxmax = -9;
    for (int s = 0; s < N / 2; s++) {
        double m, cx, cy, a;
        moments(x + s * SIZE, &m, &cx, &cy, &a);
        rmin = fmin(rmin, m / m0);
        rmax = fmax(rmax, m / m0);
        dmax = fmax(dmax, fmax(fabs(cx - cx0), fabs(cy - cy0)));
        dxmin = fmin(dxmin, cx - cx0);
        dxmax = fmax(dxmax, cx - cx0);
    }
    /* Bilinear sampling of a smooth blob keeps mass * scale^2 to ~1 %. */
    CHECK(rmin > 0.81 * 0.98 && rmax < 1.21 * 1.02,
          "affine: mass ratios %.3f..%.3f outside 0.9^2..1.1^2", rmin, rmax);
    CHECK(rmin < 0.88 && rmax > 1.12,
          "affine: mass ratios %.3f..%.3f: the scale hardly varies", rmin,
          rmax);
    CHECK(dmax <= 2.05, "affine: a centre moved by %.3f pixels (> 2)", dmax);
    CHECK(dxmin < -1.5 && dxmax > 1.5,
          "affine: centres moved by %.3f..%.3f in x: the shift hardly "
          "varies", dxmin, dxmax);
    double amax = 0, aneg = 0, apos = 0;
    for (int s = N / 2; s < N; s++) {
        double m, cx, cy, a;
        moments(x + s * SIZE, &m, &cx, &cy, &a);
        amax = fmax(amax, fabs(a));
        aneg = fmin(aneg, a);
        apos = fmax(apos, a);
    }
    /* The shear tilts the axis of this blob by up to ~0.9 degrees. */
    CHECK(amax <= 13, "affine: an axis turned by %.2f degrees (> 12 + 1)",
          amax);
    CHECK(aneg < -9 && apos > 9, "affine: axes turned by %.2f..%.2f "
          "degrees: the rotation hardly varies", aneg, apos);

    printf("affine on %d blobs: mass x %.3f..%.3f, centre moved up to "
           "%.3f pixels, axis turned %.2f..%.2f degrees\n", N / 2, rmin,
           rmax, dmax, aneg, apos);

    /* Another epoch differs; the same epoch again (after another) is the
     * same bytes: each epoch starts from the originals. */
    demo_augment_affine(&d, N, 1, 5);
    CHECK(memcmp(x, first, sizeof *x * SIZE * N) != 0,
          "affine: epoch 1 equals epoch 0");
    demo_augment_affine(&d, N, 0, 5);
    CHECK(memcmp(x, first, sizeof *x * SIZE * N) == 0,
          "affine: epoch 0 again differs (not from the originals?)");
    demo_augment_affine(&d, N, 0, 6);
    CHECK(memcmp(x, first, sizeof *x * SIZE * N) != 0,
          "affine: another seed gives the same images");
    free(orig);
    free(x);
    free(first);
}

int main(void)
{
    float *shift_images = test_shift();
    test_affine();
    free(shift_images);
    return harness_exit();
}
