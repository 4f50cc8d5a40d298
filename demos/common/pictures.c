/*
 * pictures.c - SVG line charts (written as text) and PNG images (libpng)
 * for the demos' loss/accuracy curves, confusion matrices and prediction
 * grids.
 */
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>

#include "demo.h"

/* ---- SVG curves ---------------------------------------------------------- */

int demo_svg_curves(const char *path, const char *title, const char *ylabel,
                    int nseries, const char *const *names,
                    const double *const *ys, int n)
{
    static const char *const colours[] = {"#1f77b4", "#d62728", "#2ca02c",
                                          "#ff7f0e"};
    const double W = 640, H = 400, L = 70, R = 20, T = 40, B = 50;
    double lo = INFINITY, hi = -INFINITY;
    for (int s = 0; s < nseries; s++)
        for (int i = 0; i < n; i++)
            if (isfinite(ys[s][i])) {
                lo = fmin(lo, ys[s][i]);
                hi = fmax(hi, ys[s][i]);
            }
    if (!(lo <= hi) || n < 1)
        return -1;
    if (hi - lo < 1e-12) {
        hi += 0.5;
        lo -= 0.5;
    }
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" "
               "height=\"%g\" font-family=\"sans-serif\" font-size=\"12\">\n",
            W, H);
    fprintf(f, "<rect width=\"%g\" height=\"%g\" fill=\"white\"/>\n", W, H);
    fprintf(f, "<text x=\"%g\" y=\"24\" font-size=\"16\">%s</text>\n", L,
            title);
    fprintf(f, "<text x=\"14\" y=\"%g\" transform=\"rotate(-90 14 %g)\">%s"
               "</text>\n", H / 2, H / 2, ylabel);
    fprintf(f, "<text x=\"%g\" y=\"%g\">epoch</text>\n", W / 2, H - 12);
    fprintf(f, "<path d=\"M%g %g V%g H%g\" stroke=\"black\" fill=\"none\"/>\n",
            L, T, H - B, W - R);
    for (int k = 0; k <= 4; k++) { /* y ticks */
        double v = lo + (hi - lo) * k / 4, y = H - B - (H - T - B) * k / 4;
        fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"end\">%.4g</text>\n",
                L - 6, y + 4, v);
        fprintf(f, "<path d=\"M%g %g H%g\" stroke=\"#ddd\"/>\n", L, y, W - R);
    }
    for (int k = 1; k <= n; k += (n + 9) / 10) { /* x ticks */
        double x = L + (n > 1 ? (W - L - R) * (k - 1) / (n - 1) : 0);
        fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%d</text>\n",
                x, H - B + 16, k);
    }
    for (int s = 0; s < nseries; s++) {
        const char *c = colours[s % 4];
        fprintf(f, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2\" d=\"",
                c);
        int pen = 0;
        for (int i = 0; i < n; i++) {
            if (!isfinite(ys[s][i])) {
                pen = 0;
                continue;
            }
            double x = L + (n > 1 ? (W - L - R) * i / (n - 1) : 0);
            double y = H - B - (H - T - B) * (ys[s][i] - lo) / (hi - lo);
            fprintf(f, "%c%.1f %.1f ", pen ? 'L' : 'M', x, y);
            pen = 1;
        }
        fprintf(f, "\"/>\n");
        fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"12\" height=\"4\" "
                   "fill=\"%s\"/><text x=\"%g\" y=\"%g\">%s</text>\n",
                W - R - 150, T + 4 + 16 * s, c, W - R - 134, T + 10 + 16 * s,
                names[s]);
    }
    fprintf(f, "</svg>\n");
    return fclose(f) == 0 ? 0 : -1;
}

/* A round tick step (1, 2 or 5 times a power of ten) giving at most six
 * intervals over [lo, hi]. */
static double tick_step(double lo, double hi)
{
    double raw = (hi - lo) / 6, p = pow(10, floor(log10(raw)));
    return raw / p <= 1 ? p : raw / p <= 2 ? 2 * p : raw / p <= 5 ? 5 * p
                                                                  : 10 * p;
}

int demo_svg_xy(const char *path, const char *title, const char *xlabel,
                const char *ylabel, int nseries, const char *const *names,
                const double *const *xs, const double *const *ys,
                const int *counts, const int *dots)
{
    static const char *const colours[] = {"#1f77b4", "#d62728", "#2ca02c",
                                          "#ff7f0e", "#9467bd", "#8c564b",
                                          "#e377c2", "#7f7f7f"};
    const double W = 640, H = 400, L = 70, R = 20, T = 40, B = 50;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int s = 0; s < nseries; s++)
        for (int i = 0; i < counts[s]; i++)
            if (isfinite(xs[s][i]) && isfinite(ys[s][i])) {
                x0 = fmin(x0, xs[s][i]);
                x1 = fmax(x1, xs[s][i]);
                y0 = fmin(y0, ys[s][i]);
                y1 = fmax(y1, ys[s][i]);
            }
    if (!(x0 <= x1) || !(y0 <= y1))
        return -1;
    if (x1 - x0 < 1e-12) {
        x0 -= 0.5;
        x1 += 0.5;
    }
    if (y1 - y0 < 1e-12) {
        y0 -= 0.5;
        y1 += 0.5;
    }
    /* Axes from one round tick to another. */
    double xstep = tick_step(x0, x1), ystep = tick_step(y0, y1);
    x0 = floor(x0 / xstep) * xstep;
    x1 = ceil(x1 / xstep) * xstep;
    y0 = floor(y0 / ystep) * ystep;
    y1 = ceil(y1 / ystep) * ystep;
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" "
               "height=\"%g\" font-family=\"sans-serif\" font-size=\"12\">\n",
            W, H);
    fprintf(f, "<rect width=\"%g\" height=\"%g\" fill=\"white\"/>\n", W, H);
    fprintf(f, "<text x=\"%g\" y=\"24\" font-size=\"16\">%s</text>\n", L,
            title);
    fprintf(f, "<text x=\"14\" y=\"%g\" transform=\"rotate(-90 14 %g)\">%s"
               "</text>\n", H / 2, H / 2, ylabel);
    fprintf(f, "<text x=\"%g\" y=\"%g\">%s</text>\n", W / 2, H - 12, xlabel);
    fprintf(f, "<path d=\"M%g %g V%g H%g\" stroke=\"black\" fill=\"none\"/>\n",
            L, T, H - B, W - R);
    for (double v = y0; v <= y1 + ystep / 2; v += ystep) { /* y grid */
        double y = H - B - (H - T - B) * (v - y0) / (y1 - y0);
        fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"end\">%.3g</text>\n",
                L - 6, y + 4, fabs(v) < ystep / 2 ? 0 : v);
        fprintf(f, "<path d=\"M%g %g H%g\" stroke=\"#ddd\"/>\n", L, y, W - R);
    }
    for (double v = x0; v <= x1 + xstep / 2; v += xstep) { /* x ticks */
        double x = L + (W - L - R) * (v - x0) / (x1 - x0);
        fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%.3g"
                   "</text>\n", x, H - B + 16, fabs(v) < xstep / 2 ? 0 : v);
    }
    for (int s = 0; s < nseries; s++) {
        const char *c = colours[s % 8];
        if (dots[s])
            fprintf(f, "<g fill=\"%s\" fill-opacity=\"0.35\">\n", c);
        else
            fprintf(f, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
                       "d=\"", c);
        int pen = 0;
        for (int i = 0; i < counts[s]; i++) {
            if (!isfinite(xs[s][i]) || !isfinite(ys[s][i])) {
                pen = 0;
                continue;
            }
            double x = L + (W - L - R) * (xs[s][i] - x0) / (x1 - x0);
            double y = H - B - (H - T - B) * (ys[s][i] - y0) / (y1 - y0);
            if (dots[s])
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"1.5\"/>\n", x,
                        y);
            else
                fprintf(f, "%c%.1f %.1f ", pen ? 'L' : 'M', x, y);
            pen = 1;
        }
        fprintf(f, dots[s] ? "</g>\n" : "\"/>\n");
    }
    /* The legend on a white box, so it stays readable over the data. */
    fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"150\" height=\"%d\" "
               "fill=\"white\" fill-opacity=\"0.85\"/>\n", W - R - 156,
            T - 4, 16 * nseries + 6);
    for (int s = 0; s < nseries; s++)
        fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"12\" height=\"4\" "
                   "fill=\"%s\"/><text x=\"%g\" y=\"%g\">%s</text>\n",
                W - R - 150, T + 4 + 16 * s, colours[s % 8], W - R - 134,
                T + 10 + 16 * s, names[s]);
    fprintf(f, "</svg>\n");
    return fclose(f) == 0 ? 0 : -1;
}

/* ---- PNG ------------------------------------------------------------------ */

/* Writes @w x @h RGB pixels. */
static int write_png(const char *path, int w, int h, const unsigned char *rgb)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL,
                                              NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8,
                 PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, (png_const_bytep)(rgb + (size_t)y * w * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return fclose(f) == 0 ? 0 : -1;
}

static void put(unsigned char *rgb, int w, int x, int y, int r, int g, int b)
{
    unsigned char *p = rgb + ((size_t)y * w + x) * 3;
    p[0] = (unsigned char)r;
    p[1] = (unsigned char)g;
    p[2] = (unsigned char)b;
}

int demo_png_confusion(const char *path, const int64_t *m, int classes)
{
    const int cell = 24, w = classes * cell, h = classes * cell;
    unsigned char *rgb = calloc((size_t)w * h, 3);
    if (!rgb)
        return -1;
    for (int t = 0; t < classes; t++) {
        int64_t row = 0;
        for (int p = 0; p < classes; p++)
            row += m[t * classes + p];
        for (int p = 0; p < classes; p++) {
            double share = row ? (double)m[t * classes + p] / (double)row : 0;
            /* Diagonal in blue, mistakes in red; darker = more. */
            int v = (int)(255 * (1 - sqrt(share)));
            int r = t == p ? v : 255, g = v, b = t == p ? 255 : v;
            for (int y = 1; y < cell; y++)
                for (int x = 1; x < cell; x++)
                    put(rgb, w, p * cell + x, t * cell + y, r, g, b);
        }
    }
    int rc = write_png(path, w, h, rgb);
    free(rgb);
    return rc;
}

int demo_png_grid(const char *path, const float *images, int count,
                  int channels, int height, int width, const int32_t *pred,
                  const int32_t *truth)
{
    const int pad = 2, cols = count < 10 ? count : 10;
    const int rows = (count + cols - 1) / cols;
    const int cw = width + 2 * pad, ch = height + 2 * pad;
    const int w = cols * cw, h = rows * ch;
    if (count < 1)
        return -1;
    unsigned char *rgb = calloc((size_t)w * h, 3);
    if (!rgb)
        return -1;
    for (int k = 0; k < count; k++) {
        int ox = (k % cols) * cw, oy = (k / cols) * ch;
        int ok = pred[k] == truth[k];
        for (int y = 0; y < ch; y++)
            for (int x = 0; x < cw; x++)
                put(rgb, w, ox + x, oy + y, ok ? 40 : 220, ok ? 180 : 40, 40);
        const float *img = images + (size_t)k * channels * height * width;
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++) {
                int c[3];
                for (int i = 0; i < 3; i++) {
                    float v = img[(size_t)(channels == 3 ? i : 0) * height *
                                      width + (size_t)y * width + x];
                    v = v < 0 ? 0 : v > 1 ? 1 : v;
                    c[i] = (int)(v * 255 + 0.5f);
                }
                put(rgb, w, ox + pad + x, oy + pad + y, c[0], c[1], c[2]);
            }
    }
    int rc = write_png(path, w, h, rgb);
    free(rgb);
    return rc;
}
