package io.peft4j.trainer.data;

import io.peft4j.trainer.data.SyntheticDefects.Defect;
import io.peft4j.trainer.data.SyntheticDefects.Line;

/**
 * Draws one synthetic surface image: a texture (reflectance), at most one defect on it, then the
 * lighting (exposure, a linear gradient, vignetting) and sensor noise, quantized to 8 bits.
 *
 * <p>Geometry is defined on a 32 × 32 reference grid and scaled to the output size, so an image
 * at another size shows the same surface and defect; only the per-pixel grain and noise are drawn
 * per output pixel. Every random value comes from {@link Rng} (seeded by the caller's key) or from
 * {@link #hash} of a key and integer coordinates, and the arithmetic is float arithmetic that Java
 * defines exactly (since Java 17 every float operation is strict) plus {@link StrictMath} for the
 * few trigonometric values per image: the same key gives the same bytes on every JVM and machine.
 * Stateless and thread-safe.
 */
final class DefectRenderer {

    /** Side of the reference grid the geometry is defined on. */
    static final float REF = 32f;

    private static final float PI = (float) StrictMath.PI;

    private DefectRenderer() {
    }

    /** Renders the image for {@code key} into {@code out[off .. off + size²)}, row by row. */
    static void render(Line line, Defect defect, long key, int size, byte[] out, int off) {
        Rng r = new Rng(key);
        int n = size * size;
        float px = size / REF;
        float[] refl = new float[n];

        // the surface: reflectance in about [0, 1]
        SyntheticDefects.Surface sf = line.surface();
        SyntheticDefects.Lighting li = line.lighting();
        SyntheticDefects.Appearance ap = line.appearance();
        float base = sf.reflectance() + sf.reflectanceJitter() * r.symmetric();
        float texAmp = sf.textureContrast() * (0.75f + 0.5f * r.unit());
        float angle = sf.orientation() + sf.orientationJitter() * r.symmetric();
        float scale = sf.scale() * (0.85f + 0.3f * r.unit());
        long texKey = r.nextLong();
        switch (sf.texture()) {
            case BRUSHED_METAL -> brushedMetal(refl, size, px, base, texAmp, angle, scale, texKey);
            case WOVEN_FABRIC -> wovenFabric(refl, size, px, base, texAmp, angle, scale, r.unit(), r.unit(), texKey);
        }

        // the defect
        float contrast = ap.contrastMin() + (ap.contrastMax() - ap.contrastMin()) * r.unit();
        if (r.unit() < ap.faintFraction()) {
            contrast *= 0.5f;
        }
        long defectKey = r.nextLong();
        Rng d = new Rng(defectKey);
        switch (defect) {
            case GOOD -> { }
            case SCRATCH -> scratch(refl, size, px, d, contrast, d.unit() < ap.darkScratches() ? -1 : 1);
            case SPOT -> spot(refl, size, px, d, contrast, d.unit() < ap.darkSpots() ? -1 : 1);
            case CRACK -> crack(refl, size, px, d, contrast);
            case INCLUSION -> inclusion(refl, size, px, d, contrast, d.unit() < ap.darkInclusions() ? -1 : 1, base);
        }

        // lighting and sensor noise
        float exposure = li.exposure() * (1 + 0.1f * r.symmetric());
        float g = li.gradient() * r.unit();
        float ga = 2 * PI * r.unit();
        float gx = g * (float) StrictMath.cos(ga);
        float gy = g * (float) StrictMath.sin(ga);
        float vignette = li.vignette() * r.unit();
        float sigma = li.noise() * (0.7f + 0.6f * r.unit());
        long noiseKey = r.nextLong();
        for (int y = 0; y < size; y++) {
            float v = ((y + 0.5f) / size) - 0.5f;
            for (int x = 0; x < size; x++) {
                float u = ((x + 0.5f) / size) - 0.5f;
                float gain = exposure * (1 + 2 * (gx * u + gy * v) - 2 * vignette * (u * u + v * v));
                float value = gain * refl[y * size + x] + sigma * gaussian(hash(noiseKey, x, y));
                out[off + y * size + x] = quantize(value);
            }
        }
    }

    // ---------------------------------------------------------------- textures

    /** Brushed metal: long streaks along {@code angle}, large blotches, and per-pixel grain. */
    private static void brushedMetal(float[] refl, int size, float px, float base, float amp, float angle, float width,
                                     long key) {
        float c = (float) StrictMath.cos(angle);
        float s = (float) StrictMath.sin(angle);
        long k1 = hash(key, 1, 0);
        long k2 = hash(key, 2, 0);
        long k3 = hash(key, 3, 0);
        long k4 = hash(key, 4, 0);
        for (int y = 0; y < size; y++) {
            float v = (y + 0.5f) / px;
            for (int x = 0; x < size; x++) {
                float u = (x + 0.5f) / px;
                float along = u * c + v * s;
                float across = v * c - u * s;
                float streaks = 0.65f * valueNoise(k1, along * 0.05f, across / width)
                        + 0.35f * valueNoise(k2, along * 0.12f, across * 2.3f / width);
                float blotch = valueNoise(k3, u * 0.08f, v * 0.08f);
                float grain = signed(hash(k4, x, y));
                refl[y * size + x] = base + amp * (1.3f * streaks + 0.45f * blotch + 0.3f * grain);
            }
        }
    }

    /**
     * Woven fabric, a plain weave: threads {@code period} reference pixels apart, warp and weft
     * alternating on top, each thread a little brighter or darker than the next, with fuzz.
     */
    private static void wovenFabric(float[] refl, int size, float px, float base, float amp, float angle, float period,
                                    float phaseP, float phaseQ, long key) {
        float c = (float) StrictMath.cos(angle);
        float s = (float) StrictMath.sin(angle);
        long warpKey = hash(key, 1, 0);
        long weftKey = hash(key, 2, 0);
        long blotchKey = hash(key, 3, 0);
        long fuzzKey = hash(key, 4, 0);
        for (int y = 0; y < size; y++) {
            float v = (y + 0.5f) / px;
            for (int x = 0; x < size; x++) {
                float u = (x + 0.5f) / px;
                float p = (u * c + v * s) / period + phaseP;
                float q = (v * c - u * s) / period + phaseQ;
                int i = (int) Math.floor(p);
                int j = (int) Math.floor(q);
                boolean warp = ((i + j) & 1) == 0;
                float across = warp ? p - i : q - j;
                float along = warp ? q - j : p - i;
                float a = 2 * across - 1;
                float b = 2 * along - 1;
                float thread = (1 - a * a) * (1 - 0.45f * b * b);
                float tone = signed(hash(warp ? warpKey : weftKey, warp ? i : j, 0));
                float blotch = valueNoise(blotchKey, u * 0.07f, v * 0.07f);
                float fuzz = signed(hash(fuzzKey, x, y));
                refl[y * size + x] = base + amp * (1.6f * (thread - 0.45f) + 0.3f * tone + 0.35f * blotch + 0.2f * fuzz);
            }
        }
    }

    // ---------------------------------------------------------------- defects

    /** A thin long line at a random angle, slightly bent, brighter or darker than the surface. */
    private static void scratch(float[] refl, int size, float px, Rng d, float contrast, int polarity) {
        float length = 16 + 14 * d.unit();
        float a = PI * d.unit();
        float cx = 6 + 20 * d.unit();
        float cy = 6 + 20 * d.unit();
        float bend = 1.2f * d.symmetric();
        float hw = 0.28f + 0.22f * d.unit();
        float c = (float) StrictMath.cos(a);
        float s = (float) StrictMath.sin(a);
        float[] seg = {
            cx - c * length / 2, cy - s * length / 2, cx - s * bend, cy + c * bend, hw,
            cx - s * bend, cy + c * bend, cx + c * length / 2, cy + s * length / 2, hw,
        };
        float[] cov = coverage(seg, size, px);
        float amount = polarity * contrast;
        for (int i = 0; i < refl.length; i++) {
            refl[i] += amount * cov[i];
        }
    }

    /** A round or oval blob with a soft edge, darker or brighter than the surface. */
    private static void spot(float[] refl, int size, float px, Rng d, float contrast, int polarity) {
        float radius = 1.8f + 2.7f * d.unit();
        float aspect = 0.75f + 0.5f * d.unit();
        float rot = PI * d.unit();
        float cx = 5 + 22 * d.unit();
        float cy = 5 + 22 * d.unit();
        float soft = 0.5f + 1.2f * d.unit();
        float c = (float) StrictMath.cos(rot);
        float s = (float) StrictMath.sin(rot);
        float ra = radius * aspect;
        float rb = radius / aspect;
        float amount = polarity * contrast * 1.2f;
        for (int y = 0; y < size; y++) {
            float v = (y + 0.5f) / px - cy;
            for (int x = 0; x < size; x++) {
                float u = (x + 0.5f) / px - cx;
                float e1 = (u * c + v * s) / ra;
                float e2 = (v * c - u * s) / rb;
                float e = (float) Math.sqrt(e1 * e1 + e2 * e2);
                float outside = (e - 1) * radius;
                float cov = clamp01(0.5f - outside / soft) * (0.8f + 0.2f * clamp01(1 - e * e));
                refl[y * size + x] += amount * cov;
            }
        }
    }

    /** A jagged dark path that wanders and branches, thinning towards its tips. */
    private static void crack(float[] refl, int size, float px, Rng d, float contrast) {
        float length = 12 + 12 * d.unit();
        float main = 2 * PI * d.unit();
        float cx = 7 + 18 * d.unit();
        float cy = 7 + 18 * d.unit();
        float hw = 0.4f + 0.25f * d.unit();
        int steps = Math.max(4, (int) (length / 1.6f));
        float[] xs = new float[steps + 1];
        float[] ys = new float[steps + 1];
        float[] dirs = new float[steps + 1];
        xs[0] = cx - (float) StrictMath.cos(main) * length / 2;
        ys[0] = cy - (float) StrictMath.sin(main) * length / 2;
        float wander = 0;
        float stepLen = length / steps;
        for (int k = 1; k <= steps; k++) {
            wander = 0.4f * wander + 0.9f * d.symmetric();
            float a = main + wander;
            dirs[k] = a;
            xs[k] = xs[k - 1] + (float) StrictMath.cos(a) * stepLen;
            ys[k] = ys[k - 1] + (float) StrictMath.sin(a) * stepLen;
        }
        int branches = 1 + (d.unit() < 0.5f ? 1 : 0);
        int branchSteps = 4;
        float[] seg = new float[5 * (steps + branches * branchSteps)];
        int m = 0;
        for (int k = 0; k < steps; k++) {
            float taper = 1 - 0.5f * Math.abs(2f * (k + 0.5f) / steps - 1);
            m = put(seg, m, xs[k], ys[k], xs[k + 1], ys[k + 1], hw * taper);
        }
        for (int b = 0; b < branches; b++) {
            int at = 1 + d.nextInt(steps - 1);
            float a = dirs[at] + (d.unit() < 0.5f ? -1 : 1) * (0.5f + 0.6f * d.unit());
            float bl = (4 + 5 * d.unit()) / branchSteps;
            float x0 = xs[at];
            float y0 = ys[at];
            float bw = 0;
            for (int k = 0; k < branchSteps; k++) {
                bw = 0.5f * bw + 0.6f * d.symmetric();
                float x1 = x0 + (float) StrictMath.cos(a + bw) * bl;
                float y1 = y0 + (float) StrictMath.sin(a + bw) * bl;
                m = put(seg, m, x0, y0, x1, y1, hw * 0.8f * (1 - 0.15f * k));
                x0 = x1;
                y0 = y1;
            }
        }
        float[] cov = coverage(seg, size, px);
        float depth = 1.5f * contrast;
        for (int i = 0; i < refl.length; i++) {
            refl[i] -= depth * cov[i];
        }
    }

    /** A cluster of small irregular flakes, darker or brighter, the texture showing through a little. */
    private static void inclusion(float[] refl, int size, float px, Rng d, float contrast, int polarity, float base) {
        int flakes = 3 + d.nextInt(3);
        float cx = 5 + 22 * d.unit();
        float cy = 5 + 22 * d.unit();
        float[] fx = new float[flakes];
        float[] fy = new float[flakes];
        float[] fa = new float[flakes];
        float[] fb = new float[flakes];
        float[] fc = new float[flakes];
        float[] fs = new float[flakes];
        for (int f = 0; f < flakes; f++) {
            float ang = 2 * PI * d.unit();
            float dist = 2.8f * (float) Math.sqrt(d.unit());
            fx[f] = cx + dist * (float) StrictMath.cos(ang);
            fy[f] = cy + dist * (float) StrictMath.sin(ang);
            fa[f] = 0.7f + 0.8f * d.unit();
            fb[f] = fa[f] * (0.4f + 0.6f * d.unit());
            float rot = PI * d.unit();
            fc[f] = (float) StrictMath.cos(rot);
            fs[f] = (float) StrictMath.sin(rot);
        }
        long edgeKey = d.nextLong();
        float level = base + polarity * contrast * 1.3f;
        for (int y = 0; y < size; y++) {
            float v = (y + 0.5f) / px;
            for (int x = 0; x < size; x++) {
                float u = (x + 0.5f) / px;
                float cov = 0;
                for (int f = 0; f < flakes; f++) {
                    float du = u - fx[f];
                    float dv = v - fy[f];
                    if (Math.abs(du) > 3 || Math.abs(dv) > 3) {
                        continue;
                    }
                    float e1 = (du * fc[f] + dv * fs[f]) / fa[f];
                    float e2 = (dv * fc[f] - du * fs[f]) / fb[f];
                    float e = (float) Math.sqrt(e1 * e1 + e2 * e2) * (1 + 0.35f * valueNoise(edgeKey, u * 1.3f, v * 1.3f));
                    cov = Math.max(cov, clamp01((1 - e) * fb[f] * px + 0.5f));
                }
                int i = y * size + x;
                refl[i] += 0.85f * cov * (level - refl[i]);
            }
        }
    }

    private static int put(float[] seg, int m, float x0, float y0, float x1, float y1, float hw) {
        seg[m] = x0;
        seg[m + 1] = y0;
        seg[m + 2] = x1;
        seg[m + 3] = y1;
        seg[m + 4] = hw;
        return m + 5;
    }

    /**
     * How much of each pixel the thick segments {@code (x0, y0, x1, y1, halfWidth)…} (reference
     * units) cover: 1 inside, 0 outside, a one-pixel linear ramp across the edge.
     */
    static float[] coverage(float[] seg, int size, float px) {
        float[] cov = new float[size * size];
        for (int k = 0; k + 4 < seg.length; k += 5) {
            float x0 = seg[k];
            float y0 = seg[k + 1];
            float x1 = seg[k + 2];
            float y1 = seg[k + 3];
            float hw = seg[k + 4];
            float reach = hw + 1.5f / px;
            int xa = Math.max(0, (int) Math.floor((Math.min(x0, x1) - reach) * px));
            int xb = Math.min(size - 1, (int) Math.ceil((Math.max(x0, x1) + reach) * px));
            int ya = Math.max(0, (int) Math.floor((Math.min(y0, y1) - reach) * px));
            int yb = Math.min(size - 1, (int) Math.ceil((Math.max(y0, y1) + reach) * px));
            float dx = x1 - x0;
            float dy = y1 - y0;
            float len2 = dx * dx + dy * dy;
            for (int y = ya; y <= yb; y++) {
                float v = (y + 0.5f) / px;
                for (int x = xa; x <= xb; x++) {
                    float u = (x + 0.5f) / px;
                    float t = len2 > 0 ? clamp01(((u - x0) * dx + (v - y0) * dy) / len2) : 0;
                    float ex = u - (x0 + t * dx);
                    float ey = v - (y0 + t * dy);
                    float dist = (float) Math.sqrt(ex * ex + ey * ey);
                    float c = clamp01((hw - dist) * px + 0.5f);
                    int i = y * size + x;
                    if (c > cov[i]) {
                        cov[i] = c;
                    }
                }
            }
        }
        return cov;
    }

    // ---------------------------------------------------------------- numbers

    /** [0, 1] to 0..255, rounded; values outside are clipped. */
    static byte quantize(float value) {
        float v = value <= 0 ? 0 : value >= 1 ? 1 : value;
        return (byte) (int) (v * 255f + 0.5f);
    }

    private static float clamp01(float v) {
        return v <= 0 ? 0 : v >= 1 ? 1 : v;
    }

    /** Smooth 2-D value noise in about [-1, 1]: random values on the integer lattice, smoothstep-interpolated. */
    static float valueNoise(long key, float x, float y) {
        float fx0 = (float) Math.floor(x);
        float fy0 = (float) Math.floor(y);
        long xi = (long) fx0;
        long yi = (long) fy0;
        float fx = x - fx0;
        float fy = y - fy0;
        float sx = fx * fx * (3 - 2 * fx);
        float sy = fy * fy * (3 - 2 * fy);
        float a = signed(hash(key, xi, yi));
        float b = signed(hash(key, xi + 1, yi));
        float c = signed(hash(key, xi, yi + 1));
        float e = signed(hash(key, xi + 1, yi + 1));
        float top = a + (b - a) * sx;
        float bottom = c + (e - c) * sx;
        return top + (bottom - top) * sy;
    }

    /** A well-mixed 64-bit value of a key and two integer coordinates. */
    static long hash(long key, long a, long b) {
        long h = key ^ (a * 0x9E3779B97F4A7C15L) ^ (b * 0xC2B2AE3D27D4EB4FL);
        h ^= h >>> 32;
        h *= 0xD6E8FEB86659FD93L;
        h ^= h >>> 32;
        h *= 0xD6E8FEB86659FD93L;
        h ^= h >>> 32;
        return h;
    }

    /** The top 24 bits of {@code h} as a float in [-1, 1). */
    static float signed(long h) {
        return (h >>> 40) * 0x1p-23f - 1f;
    }

    /** An approximately standard normal value from {@code h}: the sum of four 16-bit uniforms, rescaled. */
    static float gaussian(long h) {
        long s = (h & 0xffff) + ((h >>> 16) & 0xffff) + ((h >>> 32) & 0xffff) + (h >>> 48);
        // the sum has mean 2 · 65535 and variance 4 · (65536² − 1) / 12
        return (s - 131070f) * (1.7320508f / 65536f);
    }

    /** SplitMix64: a small, fast, seeded generator whose sequence is the same everywhere. */
    static final class Rng {
        private long state;

        Rng(long seed) {
            state = seed;
        }

        long nextLong() {
            long z = state += 0x9E3779B97F4A7C15L;
            z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
            z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
            return z ^ (z >>> 31);
        }

        /** Uniform in [0, 1). */
        float unit() {
            return (nextLong() >>> 40) * 0x1p-24f;
        }

        /** Uniform in [-1, 1). */
        float symmetric() {
            return 2 * unit() - 1;
        }

        /** Uniform in {@code 0 .. bound-1}. */
        int nextInt(int bound) {
            return (int) (((nextLong() >>> 32) * bound) >>> 32);
        }
    }
}
