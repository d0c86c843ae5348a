// RISE selection (rise.h) as github.com/init-neok/rise @ 9d7cb274, rise/expert_selector.py defines it.
// Differences from the authors' code, all numerically small or in edge cases they do not reach: doubles
// throughout (they keep the frequencies in float32), and zone ratios outside [0, 1] are refused here as
// they are by their RISEConfig.__post_init__.
#include "routescope/rise.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "language_matrix.h"
#include "routescope/common.h"

namespace rs {

namespace {

// expert_selector.py guards every division by μ with np.where(mean > 0, mean, 1e-8)
constexpr double kMeanFloor = 1e-8;

}  // namespace

const char * rise_zone_name(RiseZone z) {
    switch (z) {
        case RiseZone::shallow:
            return "shallow";
        case RiseZone::middle:
            return "middle";
        case RiseZone::deep:
            return "deep";
    }
    RS_ASSERT(false);
    return "";
}

std::vector<double> rise_mean_frequency(std::span<const double> a, int n_lang, int n_expert) {
    check_language_matrix(a, n_lang, n_expert);
    std::vector<double> m((size_t)n_expert, 0.0);
    for (int l = 0; l < n_lang; ++l)
        for (int e = 0; e < n_expert; ++e) m[(size_t)e] += a[(size_t)l * n_expert + e];
    for (double & v : m) v /= (double)n_lang;  // _mean_freq: np.mean over all languages
    return m;
}

std::vector<double> rise_specificity(std::span<const double> a, int n_lang, int n_expert, int target) {
    RS_ASSERT(target >= 0 && target < n_lang);
    const auto mean = rise_mean_frequency(a, n_lang, n_expert);
    std::vector<double> s((size_t)n_expert);
    for (int e = 0; e < n_expert; ++e) {
        // _specificity: S = a_target / ā, ā = 0 replaced by 1e-8 (then a_target = 0 too, so S = 0)
        const double m = mean[(size_t)e] > 0.0 ? mean[(size_t)e] : kMeanFloor;
        s[(size_t)e] = a[(size_t)target * n_expert + e] / m;
    }
    return s;
}

std::vector<double> rise_overlap(std::span<const double> a, int n_lang, int n_expert) {
    const auto mu = rise_mean_frequency(a, n_lang, n_expert);
    std::vector<double> o((size_t)n_expert);
    for (int e = 0; e < n_expert; ++e) {
        double ss = 0.0;
        for (int l = 0; l < n_lang; ++l) {
            const double d = a[(size_t)l * n_expert + e] - mu[(size_t)e];
            ss += d * d;
        }
        const double sigma = std::sqrt(ss / (double)n_lang);  // np.std: population σ (ddof = 0)
        const double m = mu[(size_t)e] > 0.0 ? mu[(size_t)e] : kMeanFloor;
        o[(size_t)e] = 1.0 / (1.0 + sigma / m);  // _overlap: O = 1 / (1 + CV); μ = 0 gives σ = 0, O = 1
    }
    return o;
}

int round_half_even(double x) {
    RS_ASSERT(x >= 0.0 && std::isfinite(x));
    const double f = std::floor(x), frac = x - f;
    if (frac > 0.5) return (int)f + 1;
    if (frac < 0.5) return (int)f;
    return ((int64_t)f % 2 == 0) ? (int)f : (int)f + 1;  // Python 3 round(): banker's rounding
}

std::array<int, 2> rise_zone_bounds(int n_layer, double shallow_ratio, double middle_ratio) {
    RS_ASSERT(n_layer >= 0);
    // RISESelector.__init__: L1 = round(L·shallow_ratio), L2 = round(L·(shallow_ratio + middle_ratio))
    const int l1 = round_half_even(n_layer * shallow_ratio);
    const int l2 = round_half_even(n_layer * (shallow_ratio + middle_ratio));
    return {std::min(l1, n_layer), std::min(std::max(l2, l1), n_layer)};
}

std::array<int64_t, 3> rise_budgets(int64_t budget, double shallow_budget, double middle_budget,
                                    const std::array<int64_t, 3> & capacity) {
    const int64_t pool = capacity[0] + capacity[1] + capacity[2];
    if (budget > pool)
        throw Error("budget K = " + std::to_string(budget) +
                    " exceeds the expert pool of the layers given (" + std::to_string(pool) + ")");
    // select(): int(K·ρ) truncates (floor for K ≥ 0); the deep zone absorbs the remainder
    std::array<int64_t, 3> b{(int64_t)((double)budget * shallow_budget),
                             (int64_t)((double)budget * middle_budget), 0};
    b[2] = budget - b[0] - b[1];
    // _redistribute_budgets: cap at capacity, spill the excess into the zone with the most room
    int64_t overflow = 0;
    for (int z = 0; z < 3; ++z)
        if (b[z] > capacity[z]) overflow += b[z] - capacity[z], b[z] = capacity[z];
    while (overflow > 0) {
        int best = -1;
        for (int z = 0; z < 3; ++z)  // max() over the zones in dict order: the first largest room wins
            if (capacity[z] - b[z] > 0 && (best < 0 || capacity[z] - b[z] > capacity[best] - b[best]))
                best = z;
        RS_ASSERT(best >= 0);  // pool ≥ K was checked
        const int64_t take = std::min(capacity[best] - b[best], overflow);
        b[best] += take;
        overflow -= take;
    }
    return b;
}

RiseSelection rise_select(std::span<const std::vector<double>> a_per_layer, int n_lang, int n_expert,
                          int target, const RiseOptions & opt) {
    RS_ASSERT(n_lang >= 2 && target >= 0 && target < n_lang && opt.budget > 0);
    const int n_layer = (int)a_per_layer.size();
    RiseSelection out;
    out.bounds = rise_zone_bounds(n_layer, opt.shallow_ratio, opt.middle_ratio);
    const int l1 = out.bounds[0], l2 = out.bounds[1];
    const std::array<int64_t, 3> capacity{(int64_t)l1 * n_expert, (int64_t)(l2 - l1) * n_expert,
                                          (int64_t)(n_layer - l2) * n_expert};
    out.budgets = rise_budgets(opt.budget, opt.shallow_budget, opt.middle_budget, capacity);

    struct Candidate {
        double score, raw;
        int layer, expert;
    };
    const std::array<std::pair<int, int>, 3> range{std::pair{0, l1}, std::pair{l1, l2},
                                                   std::pair{l2, n_layer}};
    for (int z = 0; z < 3; ++z) {
        const RiseZone zone = (RiseZone)z;
        std::vector<Candidate> cand;
        for (int l = range[z].first; l < range[z].second; ++l) {
            const auto & a = a_per_layer[(size_t)l];
            check_language_matrix(a, n_lang, n_expert);
            const auto mean = rise_mean_frequency(a, n_lang, n_expert);
            // Eq. 8: Spec = S·(1 + α·a_target) in shallow/deep, Ovlp = O·(1 + α·ā) in the middle
            const auto raw = zone == RiseZone::middle ? rise_overlap(a, n_lang, n_expert)
                                                      : rise_specificity(a, n_lang, n_expert, target);
            for (int e = 0; e < n_expert; ++e) {
                const double mag =
                    zone == RiseZone::middle ? mean[(size_t)e] : a[(size_t)target * n_expert + e];
                cand.push_back({raw[(size_t)e] * (1.0 + opt.alpha * mag), raw[(size_t)e], l, e});
            }
        }
        // candidates.sort(key=score, reverse=True) is stable: ties stay in (layer, expert) order
        std::stable_sort(cand.begin(), cand.end(),
                         [](const Candidate & x, const Candidate & y) { return x.score > y.score; });
        const size_t keep = std::min(cand.size(), (size_t)out.budgets[z]);
        for (size_t i = 0; i < keep; ++i)
            out.experts.push_back({zone, cand[i].layer, cand[i].expert, cand[i].score, cand[i].raw});
    }
    std::sort(out.experts.begin(), out.experts.end(), [](const RiseExpert & x, const RiseExpert & y) {
        return x.layer != y.layer ? x.layer < y.layer : x.expert < y.expert;
    });
    return out;
}

}  // namespace rs
