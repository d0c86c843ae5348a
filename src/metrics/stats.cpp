// Statistics for the metrics: SplitMix64, percentile bootstrap, incomplete beta / Student t, Pearson and
// Spearman correlation (stats.h).
//
// Limits: the continued fraction gives up after 10 000 iterations (never reached for a, b ≤ 1e6); all sums
// run in double and in index order, so results are bit-identical across runs and thread counts.
#include "routescope/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "routescope/common.h"

namespace rs {

// ---------------------------------------------------------------------------------------------------
// RNG

// mix64 and SplitMix64::next are inline in stats.h.

uint64_t derive_seed(uint64_t seed, uint64_t a, uint64_t b) {
    return mix64(mix64(mix64(seed) ^ a) ^ b);
}

uint64_t uniform_below(SplitMix64 & rng, uint64_t n) {
    RS_ASSERT(n > 0);
    // Values below 2^64 mod n would make the low residues more likely: reject them.
    const uint64_t threshold = (0 - n) % n;
    for (;;) {
        const uint64_t r = rng.next();
        if (r >= threshold) return r % n;
    }
}

// ---------------------------------------------------------------------------------------------------
// Bootstrap

double quantile_sorted(std::span<const double> sorted, double q) {
    RS_ASSERT(!sorted.empty() && q >= 0.0 && q <= 1.0);
    const double pos = q * (double)(sorted.size() - 1);
    const size_t i = (size_t)std::floor(pos);
    if (i + 1 >= sorted.size()) return sorted.back();
    const double frac = pos - (double)i;
    return sorted[i] + frac * (sorted[i + 1] - sorted[i]);
}

std::optional<ConfidenceInterval> bootstrap_mean_ci(std::span<const double> values,
                                                    const BootstrapOptions & opt) {
    RS_ASSERT(opt.n_resamples > 0 && opt.level > 0.0 && opt.level < 1.0);
    const size_t n = values.size();
    if (n == 0) return std::nullopt;
    if (n == 1) return ConfidenceInterval{values[0], values[0]};
    std::vector<double> means((size_t)opt.n_resamples);
    const UniformBelow below(n);  // uniform_below(rng, n), without divisions
    for (int r = 0; r < opt.n_resamples; ++r) {
        SplitMix64 rng(derive_seed(opt.seed, (uint64_t)r, 0));
        double sum = 0.0;
        for (size_t k = 0; k < n; ++k) sum += values[(size_t)below(rng)];
        means[(size_t)r] = sum / (double)n;
    }
    std::sort(means.begin(), means.end());
    const double tail = 0.5 * (1.0 - opt.level);
    return ConfidenceInterval{quantile_sorted(means, tail), quantile_sorted(means, 1.0 - tail)};
}

// ---------------------------------------------------------------------------------------------------
// Regularised incomplete beta: Numerical Recipes 3rd ed. §6.4, Eq. 6.4.5 (Lentz's continued fraction).

namespace {

double beta_continued_fraction(double a, double b, double x) {
    constexpr int kMaxIter = 10000;
    constexpr double kEps = std::numeric_limits<double>::epsilon();
    constexpr double kTiny = std::numeric_limits<double>::min() / kEps;
    const double qab = a + b, qap = a + 1.0, qam = a - 1.0;
    double c = 1.0;
    double d = 1.0 - qab * x / qap;
    if (std::fabs(d) < kTiny) d = kTiny;
    d = 1.0 / d;
    double h = d;
    for (int m = 1; m <= kMaxIter; ++m) {
        const double m2 = 2.0 * m;
        // even step: d_{2m} = m(b−m)x / ((a+2m−1)(a+2m))
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if (std::fabs(d) < kTiny) d = kTiny;
        c = 1.0 + aa / c;
        if (std::fabs(c) < kTiny) c = kTiny;
        d = 1.0 / d;
        h *= d * c;
        // odd step: d_{2m+1} = −(a+m)(a+b+m)x / ((a+2m)(a+2m+1))
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if (std::fabs(d) < kTiny) d = kTiny;
        c = 1.0 + aa / c;
        if (std::fabs(c) < kTiny) c = kTiny;
        d = 1.0 / d;
        const double del = d * c;
        h *= del;
        if (std::fabs(del - 1.0) <= kEps) break;
    }
    return h;
}

}  // namespace

double incomplete_beta(double a, double b, double x) {
    RS_ASSERT(a > 0.0 && b > 0.0 && x >= 0.0 && x <= 1.0);
    if (x == 0.0) return 0.0;
    if (x == 1.0) return 1.0;
    // front factor x^a (1−x)^b / B(a, b), in logs
    const double log_front =
        std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
    const double front = std::exp(log_front);
    // the continued fraction converges fast for x < (a+1)/(a+b+2); use the symmetry I_x(a,b) = 1 −
    // I_{1−x}(b,a)
    if (x < (a + 1.0) / (a + b + 2.0)) return front * beta_continued_fraction(a, b, x) / a;
    return 1.0 - front * beta_continued_fraction(b, a, 1.0 - x) / b;
}

double student_t_two_sided_p(double t, double df) {
    RS_ASSERT(df > 0.0 && !std::isnan(t));
    if (std::isinf(t)) return 0.0;
    return incomplete_beta(0.5 * df, 0.5, df / (df + t * t));
}

double student_t_cdf(double t, double df) {
    const double tail = 0.5 * student_t_two_sided_p(t, df);
    return t >= 0.0 ? 1.0 - tail : tail;
}

// ---------------------------------------------------------------------------------------------------
// Correlation

namespace {

bool all_finite(std::span<const double> x) {
    return std::all_of(x.begin(), x.end(), [](double v) { return std::isfinite(v); });
}

bool is_constant(std::span<const double> x) {
    return std::all_of(x.begin(), x.end(), [&](double v) { return v == x[0]; });
}

std::optional<Correlation> pearson_impl(std::span<const double> x, std::span<const double> y) {
    const size_t n = x.size();
    double mx = 0.0, my = 0.0;
    for (size_t i = 0; i < n; ++i) mx += x[i], my += y[i];
    mx /= (double)n;
    my /= (double)n;
    double sxx = 0.0, syy = 0.0, sxy = 0.0;
    for (size_t i = 0; i < n; ++i) {
        const double dx = x[i] - mx, dy = y[i] - my;
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    if (!(sxx > 0.0) || !(syy > 0.0)) return std::nullopt;
    Correlation c;
    c.n = (int64_t)n;
    c.r = std::clamp(sxy / std::sqrt(sxx * syy), -1.0, 1.0);
    const double df = (double)n - 2.0;
    const double one_minus_r2 = 1.0 - c.r * c.r;
    c.p = one_minus_r2 <= 0.0 ? 0.0 : student_t_two_sided_p(c.r * std::sqrt(df / one_minus_r2), df);
    return c;
}

bool correlation_defined(std::span<const double> x, std::span<const double> y) {
    return x.size() == y.size() && x.size() >= 3 && all_finite(x) && all_finite(y) && !is_constant(x) &&
           !is_constant(y);
}

}  // namespace

std::optional<Correlation> pearson(std::span<const double> x, std::span<const double> y) {
    if (!correlation_defined(x, y)) return std::nullopt;
    return pearson_impl(x, y);
}

std::vector<double> average_ranks(std::span<const double> x) {
    std::vector<size_t> order(x.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
    std::vector<double> rank(x.size());
    for (size_t i = 0; i < order.size();) {
        size_t j = i + 1;
        while (j < order.size() && x[order[j]] == x[order[i]]) ++j;
        // positions i..j−1 (0-based) share the mean of 1-based ranks i+1..j
        const double r = 0.5 * (double)(i + 1 + j);
        for (size_t k = i; k < j; ++k) rank[order[k]] = r;
        i = j;
    }
    return rank;
}

std::optional<Correlation> spearman(std::span<const double> x, std::span<const double> y) {
    if (!correlation_defined(x, y)) return std::nullopt;
    const std::vector<double> rx = average_ranks(x), ry = average_ranks(y);
    return pearson_impl(rx, ry);
}

}  // namespace rs
