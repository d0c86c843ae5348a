// Routing divergence: expert importance (Eq. 1), entropy, KL, JS (Eq. 6), entropy-normalised JS
// (Eqs. 7–8), divergence from a pivot over parallel pairs (Eq. 2), unpaired and matrix forms.
// All equation numbers refer to Bandarkar et al. 2025, "Multilingual Routing in Mixture-of-Experts"
// (§4.3, Appendix A.4).
//
// Limits: every sum runs in double and in index order (deterministic); float inputs are widened per
// element. The matrix costs O(n_lang² · n_group · E) logarithms per layer; callers parallelise over layers.
#include "routescope/divergence.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "routescope/common.h"

namespace rs {

// ---------------------------------------------------------------------------------------------------
// Single distributions

bool expert_importance(const ProbRows & p, std::span<double> out) {
    RS_ASSERT(p.valid() && (int)out.size() == p.width);
    if (p.n_rows == 0) return false;
    std::fill(out.begin(), out.end(), 0.0);
    for (int64_t t = 0; t < p.n_rows; ++t) {
        const std::span<const float> row = p.row(t);
        for (int e = 0; e < p.width; ++e) out[(size_t)e] += (double)row[(size_t)e];
    }
    // Eq. 1: q_i = (1/L_i) Σ_t p_{i,t}
    const double inv_len = 1.0 / (double)p.n_rows;
    for (double & v : out) v *= inv_len;
    return true;
}

std::vector<double> expert_importance(const ProbRows & p) {
    std::vector<double> q((size_t)p.width);
    if (!expert_importance(p, q)) q.clear();
    return q;
}

namespace {

// H(q) = −Σ q log q with 0·log 0 = 0 (Section 4.4 / Eq. 7 use the same H).
template <class T>
double entropy_t(std::span<const T> q) {
    double h = 0.0;
    for (const T v : q) {
        const double x = (double)v;
        if (x > 0.0) h -= x * std::log(x);
    }
    return h;
}

// Eq. 6: D_JS(a‖b) = ½ KL(a‖m) + ½ KL(b‖m), m = ½(a+b). Terms with a_e = 0 (resp. b_e = 0) vanish, and
// m_e > 0 whenever a_e > 0 or b_e > 0, so the sum is always finite. Rounding can leave it a hair outside
// [0, log 2]; clamp to the exact bounds (identical inputs give exactly 0: m_e = a_e, log 1 = 0).
template <class T>
double js_t(std::span<const T> a, std::span<const T> b) {
    RS_ASSERT(a.size() == b.size());
    double s = 0.0;
    for (size_t e = 0; e < a.size(); ++e) {
        const double x = (double)a[e], y = (double)b[e];
        const double m = 0.5 * (x + y);
        const double tx = x > 0.0 ? x * std::log(x / m) : 0.0;
        const double ty = y > 0.0 ? y * std::log(y / m) : 0.0;
        s += 0.5 * (tx + ty);  // tx + ty commutes exactly, so D_JS(a‖b) == D_JS(b‖a) bit for bit
    }
    return std::clamp(s, 0.0, std::numbers::ln2);
}

// Eqs. 7–8 with the entropies given: F = log E − ½(H(a) + H(b)), D_H-JS = D_JS / F; undefined when F is
// below floor_rel·log E (both distributions near uniform) or E ≤ 1.
template <class T>
std::optional<double> hjs_t(std::span<const T> a, std::span<const T> b, double h_a, double h_b,
                            double floor_rel) {
    RS_ASSERT(a.size() == b.size());
    if (a.size() <= 1) return std::nullopt;
    const double log_e = std::log((double)a.size());
    const double f = log_e - 0.5 * (h_a + h_b);
    if (!(f >= floor_rel * log_e) || !(f > 0.0)) return std::nullopt;
    return js_t(a, b) / f;
}

template <class T>
std::vector<std::optional<double>> pairwise_t(std::span<const T> pivot, std::span<const T> lang, int n_expert,
                                              double floor_rel) {
    RS_ASSERT(n_expert > 0 && pivot.size() == lang.size() && pivot.size() % (size_t)n_expert == 0);
    const size_t n_pairs = pivot.size() / (size_t)n_expert;
    std::vector<std::optional<double>> out(n_pairs);
    for (size_t i = 0; i < n_pairs; ++i) {
        const auto a = pivot.subspan(i * (size_t)n_expert, (size_t)n_expert);
        const auto b = lang.subspan(i * (size_t)n_expert, (size_t)n_expert);
        out[i] = hjs_t(a, b, entropy_t(a), entropy_t(b), floor_rel);
    }
    return out;
}

template <class T>
DivergenceMatrix matrix_t(std::span<const T> q, int n_lang, int64_t n_group, int n_expert,
                          std::span<const uint8_t> present, double floor_rel) {
    RS_ASSERT(n_lang >= 0 && n_group >= 0 && n_expert > 0);
    const size_t n_rows = (size_t)n_lang * (size_t)n_group;
    RS_ASSERT(q.size() == n_rows * (size_t)n_expert);
    RS_ASSERT(present.empty() || present.size() == n_rows);
    auto row = [&](size_t r) { return q.subspan(r * (size_t)n_expert, (size_t)n_expert); };
    auto has = [&](size_t r) { return present.empty() || present[r] != 0; };

    // entropies once per (language, group) row
    std::vector<double> h(n_rows, 0.0);
    for (size_t r = 0; r < n_rows; ++r)
        if (has(r)) h[r] = entropy_t(row(r));

    DivergenceMatrix m;
    m.n = n_lang;
    const size_t cells = (size_t)n_lang * (size_t)n_lang;
    m.value.assign(cells, 0.0);
    m.n_defined.assign(cells, 0);
    m.n_undefined.assign(cells, 0);
    for (int a = 0; a < n_lang; ++a) {
        for (int b = a + 1; b < n_lang; ++b) {
            double sum = 0.0;
            int64_t n_def = 0, n_undef = 0;
            for (int64_t g = 0; g < n_group; ++g) {
                const size_t ra = (size_t)a * (size_t)n_group + (size_t)g;
                const size_t rb = (size_t)b * (size_t)n_group + (size_t)g;
                if (!has(ra) || !has(rb)) continue;
                const std::optional<double> d = hjs_t(row(ra), row(rb), h[ra], h[rb], floor_rel);
                if (d) {
                    sum += *d;
                    ++n_def;
                } else {
                    ++n_undef;
                }
            }
            const double mean = n_def > 0 ? sum / (double)n_def : 0.0;
            for (const auto & [i, j] : {std::pair{a, b}, std::pair{b, a}}) {
                const size_t c = (size_t)i * (size_t)n_lang + (size_t)j;
                m.value[c] = mean;
                m.n_defined[c] = n_def;
                m.n_undefined[c] = n_undef;
            }
        }
    }
    return m;
}

}  // namespace

double entropy(std::span<const double> q) {
    return entropy_t(q);
}
double entropy(std::span<const float> q) {
    return entropy_t(q);
}

std::optional<double> kl_divergence(std::span<const double> a, std::span<const double> b) {
    RS_ASSERT(a.size() == b.size());
    double s = 0.0;
    for (size_t e = 0; e < a.size(); ++e) {
        if (!(a[e] > 0.0)) continue;  // 0·log(0/b) = 0
        if (!(b[e] > 0.0)) return std::nullopt;
        s += a[e] * std::log(a[e] / b[e]);
    }
    return std::max(s, 0.0);
}

double js_divergence(std::span<const double> a, std::span<const double> b) {
    return js_t(a, b);
}
double js_divergence(std::span<const float> a, std::span<const float> b) {
    return js_t(a, b);
}

std::optional<double> hjs_divergence(std::span<const double> a, std::span<const double> b, double floor_rel) {
    return hjs_t(a, b, entropy_t(a), entropy_t(b), floor_rel);
}

std::optional<double> hjs_divergence(std::span<const float> a, std::span<const float> b, double floor_rel) {
    return hjs_t(a, b, entropy_t(a), entropy_t(b), floor_rel);
}

std::optional<double> hjs_divergence_given_entropies(std::span<const double> a, std::span<const double> b,
                                                     double h_a, double h_b, double floor_rel) {
    return hjs_t(a, b, h_a, h_b, floor_rel);
}

std::optional<double> hjs_divergence_given_entropies(std::span<const double> a, std::span<const double> b,
                                                     double h_a, double h_b, HjsNormaliser mode) {
    if (mode == HjsNormaliser::undefined) return hjs_t(a, b, h_a, h_b, kHjsFloorRel);
    RS_ASSERT(a.size() == b.size());
    if (a.size() <= 1) return std::nullopt;
    // analysis_helpers.py: max_possible_js = log(E) − avg_entropy; torch.clamp(max_possible_js, min=1e-6)
    const double f = std::max(std::log((double)a.size()) - 0.5 * (h_a + h_b), kHjsClampAbs);
    return js_t(a, b) / f;
}

// The normaliser F of Eq. 7 under `mode` (clamped, or nullopt where undefined), and nullopt for E ≤ 1.
static std::optional<double> hjs_normaliser(size_t n_expert, double h_a, double h_b, HjsNormaliser mode) {
    if (n_expert <= 1) return std::nullopt;
    const double log_e = std::log((double)n_expert);
    const double f = log_e - 0.5 * (h_a + h_b);  // Eq. 7
    if (mode == HjsNormaliser::clamp) return std::max(f, kHjsClampAbs);
    if (!(f >= kHjsFloorRel * log_e) || !(f > 0.0)) return std::nullopt;
    return f;
}

std::optional<double> hjs_divergence_self(size_t n_expert, double h_a, HjsNormaliser mode) {
    if (!hjs_normaliser(n_expert, h_a, h_a, mode)) return std::nullopt;
    return 0.0;
}

std::optional<double> hjs_divergence_given_logs(std::span<const double> a, std::span<const double> b,
                                                std::span<const double> log_a, std::span<const double> log_b,
                                                double h_a, double h_b, HjsNormaliser mode) {
    RS_ASSERT(a.size() == b.size() && log_a.size() == a.size() && log_b.size() == b.size());
    const auto nf = hjs_normaliser(a.size(), h_a, h_b, mode);
    if (!nf) return std::nullopt;
    const double f = *nf;
    double s = 0.0;
    for (size_t e = 0; e < a.size(); ++e) {
        const double x = a[e], y = b[e];
        if (!(x > 0.0) && !(y > 0.0)) continue;
        const double lm = std::log(0.5 * (x + y));
        const double tx = x > 0.0 ? x * (log_a[e] - lm) : 0.0;
        const double ty = y > 0.0 ? y * (log_b[e] - lm) : 0.0;
        s += 0.5 * (tx + ty);
    }
    return std::clamp(s, 0.0, std::numbers::ln2) / f;  // Eq. 6 clamped to its bounds as js_t, then Eq. 8
}

// ---------------------------------------------------------------------------------------------------
// Divergence from a pivot (Eq. 2)

std::vector<std::optional<double>> pairwise_hjs(std::span<const double> pivot, std::span<const double> lang,
                                                int n_expert, double floor_rel) {
    return pairwise_t(pivot, lang, n_expert, floor_rel);
}

std::vector<std::optional<double>> pairwise_hjs(std::span<const float> pivot, std::span<const float> lang,
                                                int n_expert, double floor_rel) {
    return pairwise_t(pivot, lang, n_expert, floor_rel);
}

PairedDivergence summarise_pairs(std::span<const std::optional<double>> values, const BootstrapOptions & bs) {
    PairedDivergence out;
    out.n_pairs = (int64_t)values.size();
    std::vector<double> defined;
    defined.reserve(values.size());
    for (const auto & v : values)
        if (v) defined.push_back(*v);
    out.n_defined = (int64_t)defined.size();
    out.n_undefined = out.n_pairs - out.n_defined;
    if (defined.empty()) return out;
    // Eq. 2: Div = (1/N) Σ_i D_H-JS(q_i^(pivot) ‖ q_i^(lang)), over the defined pairs
    double sum = 0.0;
    for (const double v : defined) sum += v;
    out.mean = sum / (double)defined.size();
    out.ci = bootstrap_mean_ci(defined, bs).value_or(ConfidenceInterval{out.mean, out.mean});
    return out;
}

PairedDivergence paired_divergence(std::span<const double> pivot, std::span<const double> lang, int n_expert,
                                   const DivergenceOptions & opt) {
    const auto v = pairwise_hjs(pivot, lang, n_expert, opt.floor_rel);
    return summarise_pairs(v, opt.bootstrap);
}

PairedDivergence paired_divergence(std::span<const float> pivot, std::span<const float> lang, int n_expert,
                                   const DivergenceOptions & opt) {
    const auto v = pairwise_hjs(pivot, lang, n_expert, opt.floor_rel);
    return summarise_pairs(v, opt.bootstrap);
}

// ---------------------------------------------------------------------------------------------------
// Unpaired and matrix

std::vector<double> mean_importance(std::span<const double> q, int n_expert) {
    RS_ASSERT(n_expert > 0 && q.size() % (size_t)n_expert == 0);
    const size_t n = q.size() / (size_t)n_expert;
    if (n == 0) return {};
    std::vector<double> mean((size_t)n_expert, 0.0);
    for (size_t i = 0; i < n; ++i)
        for (size_t e = 0; e < (size_t)n_expert; ++e) mean[e] += q[i * (size_t)n_expert + e];
    for (double & v : mean) v /= (double)n;
    return mean;
}

std::optional<double> unpaired_divergence(std::span<const double> mean_q1, std::span<const double> mean_q2,
                                          double floor_rel) {
    return hjs_divergence(mean_q1, mean_q2, floor_rel);
}

std::vector<double> DivergenceMatrix::distances_filled() const {
    double fill = 0.0;
    for (int a = 0; a < n; ++a)
        for (int b = 0; b < n; ++b)
            if (a != b && defined(a, b)) fill = std::max(fill, at(a, b));
    std::vector<double> d = value;
    for (int a = 0; a < n; ++a)
        for (int b = 0; b < n; ++b)
            if (!defined(a, b)) d[(size_t)a * n + b] = fill;
    return d;
}

DivergenceMatrix divergence_matrix(std::span<const double> q, int n_lang, int64_t n_group, int n_expert,
                                   std::span<const uint8_t> present, double floor_rel) {
    return matrix_t(q, n_lang, n_group, n_expert, present, floor_rel);
}

DivergenceMatrix divergence_matrix(std::span<const float> q, int n_lang, int64_t n_group, int n_expert,
                                   std::span<const uint8_t> present, double floor_rel) {
    return matrix_t(q, n_lang, n_group, n_expert, present, floor_rel);
}

}  // namespace rs
