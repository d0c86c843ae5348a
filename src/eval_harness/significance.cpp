// Paired significance tests for base vs steered evaluations (routescope/eval_significance.h): exact binomial
// tails, McNemar (exact and chi-square), paired and stratified bootstrap CIs of the delta, and the sign test.
//
// Limits: binomial tails come from the incomplete beta of stats.h (~1e-12 relative), so p-values are exact
// to that precision for any n used here (≤ 1e6 pairs); they are clamped to [0, 1].
#include <algorithm>
#include <cmath>

#include "routescope/common.h"
#include "routescope/eval_significance.h"

namespace rs {

double binomial_half_cdf(int64_t k, int64_t n) {
    RS_ASSERT(n >= 0);
    if (k < 0) return 0.0;
    if (k >= n) return 1.0;
    // P(X ≤ k | n, p) = I_{1−p}(n − k, k + 1) (Abramowitz & Stegun 26.5.24), here p = ½.
    return std::clamp(incomplete_beta((double)(n - k), (double)(k + 1), 0.5), 0.0, 1.0);
}

double binomial_two_sided_p(int64_t k1, int64_t k2) {
    RS_ASSERT(k1 >= 0 && k2 >= 0);
    const int64_t n = k1 + k2;
    if (n == 0) return 1.0;
    return std::min(1.0, 2.0 * binomial_half_cdf(std::min(k1, k2), n));
}

PairedCounts paired_counts(std::span<const uint8_t> base, std::span<const uint8_t> steered) {
    RS_ASSERT(base.size() == steered.size());
    PairedCounts t;
    t.n = (int64_t)base.size();
    for (size_t i = 0; i < base.size(); ++i) {
        const bool b = base[i] != 0, s = steered[i] != 0;
        if (b && s)
            ++t.both;
        else if (b)
            ++t.base_only;
        else if (s)
            ++t.steered_only;
        else
            ++t.neither;
    }
    return t;
}

double mcnemar_exact_p(int64_t b, int64_t c) {
    return binomial_two_sided_p(b, c);
}

double mcnemar_chi2_p(int64_t b, int64_t c) {
    RS_ASSERT(b >= 0 && c >= 0);
    if (b + c == 0) return 1.0;
    const double diff = std::max(0.0, std::fabs((double)(b - c)) - 1.0);
    const double chi2 = diff * diff / (double)(b + c);
    // The χ²₁ survival function: P(Z² ≥ x) = 2·(1 − Φ(√x)) = erfc(√(x/2)).
    return std::clamp(std::erfc(std::sqrt(chi2 / 2.0)), 0.0, 1.0);
}

std::optional<ConfidenceInterval> paired_bootstrap_delta_ci(std::span<const uint8_t> base,
                                                            std::span<const uint8_t> steered,
                                                            const BootstrapOptions & opt) {
    RS_ASSERT(base.size() == steered.size());
    std::vector<double> d(base.size());
    for (size_t i = 0; i < base.size(); ++i)
        d[i] = (steered[i] != 0 ? 1.0 : 0.0) - (base[i] != 0 ? 1.0 : 0.0);
    return bootstrap_mean_ci(d, opt);
}

std::optional<ConfidenceInterval> stratified_bootstrap_delta_ci(std::span<const std::vector<uint8_t>> base,
                                                                std::span<const std::vector<uint8_t>> steered,
                                                                const BootstrapOptions & opt) {
    RS_ASSERT(base.size() == steered.size());
    RS_ASSERT(opt.n_resamples > 0 && opt.level > 0.0 && opt.level < 1.0);
    const size_t n_groups = base.size();
    if (n_groups == 0) return std::nullopt;
    std::vector<std::vector<double>> d(n_groups);
    for (size_t g = 0; g < n_groups; ++g) {
        RS_ASSERT(base[g].size() == steered[g].size());
        if (base[g].empty()) return std::nullopt;
        for (size_t i = 0; i < base[g].size(); ++i)
            d[g].push_back((steered[g][i] != 0 ? 1.0 : 0.0) - (base[g][i] != 0 ? 1.0 : 0.0));
    }
    std::vector<double> means((size_t)opt.n_resamples);
    for (int r = 0; r < opt.n_resamples; ++r) {
        double avg = 0.0;
        for (size_t g = 0; g < n_groups; ++g) {
            SplitMix64 rng(derive_seed(opt.seed, (uint64_t)r, (uint64_t)g + 1));
            const size_t n = d[g].size();
            double sum = 0.0;
            for (size_t k = 0; k < n; ++k) sum += d[g][(size_t)uniform_below(rng, n)];
            avg += sum / (double)n;
        }
        means[(size_t)r] = avg / (double)n_groups;
    }
    std::sort(means.begin(), means.end());
    const double tail = 0.5 * (1.0 - opt.level);
    return ConfidenceInterval{quantile_sorted(means, tail), quantile_sorted(means, 1.0 - tail)};
}

SignTest sign_test(std::span<const double> deltas, double zero_tol) {
    SignTest t;
    for (const double d : deltas) {
        RS_ASSERT(!std::isnan(d));
        if (std::fabs(d) <= zero_tol)
            ++t.n_zero;
        else if (d > 0)
            ++t.n_pos;
        else
            ++t.n_neg;
    }
    t.p = binomial_two_sided_p(t.n_pos, t.n_neg);
    return t;
}

}  // namespace rs
