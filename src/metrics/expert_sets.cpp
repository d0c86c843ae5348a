// Expert sets of one layer: the Δ of Eq. 3 and τ-thresholded specialised / multilingual / task experts
// with their overlaps (specialisation.h; Bandarkar et al. 2025, §5.2), and the routing isolation of two
// languages (language_experts.h, ours). The authors' RISE and Chen et al. definitions: rise.cpp, chen.cpp.
//
// Limits: sets are plain sorted id lists of one layer; frequencies are taken as given (build them with
// ActivationAccumulator / TokenActivationCounter over the same corpus for every language); nothing here
// knows about steering (the steer spec is built elsewhere from these lists).
#include "routescope/specialisation.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <numeric>

#include "language_matrix.h"
#include "routescope/common.h"
#include "routescope/language_experts.h"

namespace rs {

// ===================================================================================================
// Specialisation (specialisation.h)

std::vector<double> activation_delta(std::span<const double> mean1, std::span<const double> mean2) {
    RS_ASSERT(mean1.size() == mean2.size());
    std::vector<double> delta(mean1.size());
    // Eq. 3: Δ = mean_i(a_i/L_i, corpus 1) − mean_j(a_j/L_j, corpus 2); both terms lie in [0, 1]
    for (size_t e = 0; e < delta.size(); ++e) delta[e] = std::clamp(mean1[e] - mean2[e], -1.0, 1.0);
    return delta;
}

std::vector<double> activation_delta(const ActivationAccumulator & c1, const ActivationAccumulator & c2) {
    RS_ASSERT(c1.n_expert == c2.n_expert);
    if (c1.n_seq == 0 || c2.n_seq == 0) return {};
    return activation_delta(c1.mean(), c2.mean());
}

std::vector<int> specialised_experts(std::span<const double> delta, double tau) {
    // §5.2: "the k-th expert is selected for intervention if Δ_k > τ"
    std::vector<int> out;
    for (size_t e = 0; e < delta.size(); ++e)
        if (delta[e] > tau) out.push_back((int)e);
    return out;
}

std::vector<int> multilingual_experts(std::span<const double> deltas, int n_expert, double tau) {
    RS_ASSERT(n_expert > 0 && deltas.size() % (size_t)n_expert == 0);
    // §5.2: "a multilingual expert [is] one where for any language, Δ_k > τ"
    const size_t n_lang = deltas.size() / (size_t)n_expert;
    std::vector<int> out;
    for (int e = 0; e < n_expert; ++e) {
        for (size_t l = 0; l < n_lang; ++l) {
            if (deltas[l * (size_t)n_expert + (size_t)e] > tau) {
                out.push_back(e);
                break;
            }
        }
    }
    return out;
}

SetOverlap set_overlap(std::span<const int> a, std::span<const int> b) {
    RS_ASSERT(std::is_sorted(a.begin(), a.end()) && std::adjacent_find(a.begin(), a.end()) == a.end());
    RS_ASSERT(std::is_sorted(b.begin(), b.end()) && std::adjacent_find(b.begin(), b.end()) == b.end());
    SetOverlap o;
    o.n_a = (int64_t)a.size();
    o.n_b = (int64_t)b.size();
    std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(o.intersection));
    o.n_intersection = (int64_t)o.intersection.size();
    o.n_union = o.n_a + o.n_b - o.n_intersection;
    if (o.n_union > 0) o.jaccard = (double)o.n_intersection / (double)o.n_union;
    return o;
}

LayeredOverlap layered_overlap(std::span<const std::vector<int>> a, std::span<const std::vector<int>> b) {
    RS_ASSERT(a.size() == b.size());
    LayeredOverlap out;
    out.per_layer.reserve(a.size());
    for (size_t l = 0; l < a.size(); ++l) {
        SetOverlap o = set_overlap(a[l], b[l]);
        out.total.n_a += o.n_a;
        out.total.n_b += o.n_b;
        out.total.n_intersection += o.n_intersection;
        out.total.n_union += o.n_union;
        out.per_layer.push_back(std::move(o));
    }
    if (out.total.n_union > 0)
        out.total.jaccard = (double)out.total.n_intersection / (double)out.total.n_union;
    return out;
}

// ===================================================================================================
// Routing isolation (language_experts.h, ours)

namespace {

std::vector<int> sorted_copy(std::vector<int> v) {
    std::sort(v.begin(), v.end());
    return v;
}

}  // namespace

std::vector<int> top_experts(std::span<const double> scores, int m) {
    RS_ASSERT(m >= 0);
    std::vector<int> ids(scores.size());
    std::iota(ids.begin(), ids.end(), 0);
    const size_t keep = std::min((size_t)m, ids.size());
    std::partial_sort(ids.begin(), ids.begin() + (ptrdiff_t)keep, ids.end(), [&](int a, int b) {
        if (scores[(size_t)a] != scores[(size_t)b]) return scores[(size_t)a] > scores[(size_t)b];
        return a < b;
    });
    ids.resize(keep);
    return ids;
}

double routing_isolation(std::span<const double> f_a, std::span<const double> f_b, int m) {
    RS_ASSERT(f_a.size() == f_b.size() && m >= 1);
    const std::vector<int> a = sorted_copy(top_experts(f_a, m));
    const std::vector<int> b = sorted_copy(top_experts(f_b, m));
    // Jaccard of the top-m sets (both non-empty, so defined)
    return set_overlap(a, b).jaccard.value_or(1.0);
}

std::vector<double> routing_isolation_matrix(std::span<const double> f, int n_lang, int n_expert, int m) {
    check_language_matrix(f, n_lang, n_expert);
    std::vector<double> out((size_t)n_lang * (size_t)n_lang, 1.0);
    auto row = [&](int l) { return f.subspan((size_t)l * (size_t)n_expert, (size_t)n_expert); };
    for (int a = 0; a < n_lang; ++a)
        for (int b = a + 1; b < n_lang; ++b) {
            const double j = routing_isolation(row(a), row(b), m);
            out[(size_t)a * (size_t)n_lang + (size_t)b] = j;
            out[(size_t)b * (size_t)n_lang + (size_t)a] = j;
        }
    return out;
}

}  // namespace rs
