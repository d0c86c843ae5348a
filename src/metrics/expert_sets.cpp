// Expert sets of one layer: the Δ of Eq. 3 and τ-thresholded specialised / multilingual / task experts
// with their overlaps (specialisation.h; Bandarkar et al. 2025, §5.2), and the language-level scores of our
// RISE / Chen et al. operationalisation (language_experts.h: specificity, overlap, routing isolation,
// tripartite selection, shared vs language-exclusive experts).
//
// Limits: sets are plain sorted id lists of one layer; frequencies are taken as given (build them with
// ActivationAccumulator / TokenActivationCounter over the same corpus for every language); nothing here
// knows about steering (the steer spec is built elsewhere from these lists).
#include "routescope/specialisation.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <numeric>

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
// Language-level scores: RISE and Chen et al., our operationalisation (language_experts.h)

namespace {

void check_shape(std::span<const double> f, int n_lang, int n_expert) {
    RS_ASSERT(n_lang >= 1 && n_expert >= 1 && f.size() == (size_t)n_lang * (size_t)n_expert);
}

double freq(std::span<const double> f, int n_expert, int lang, int e) {
    return f[(size_t)lang * (size_t)n_expert + (size_t)e];
}

std::vector<int> sorted_copy(std::vector<int> v) {
    std::sort(v.begin(), v.end());
    return v;
}

}  // namespace

std::vector<double> specificity_scores(std::span<const double> f, int n_lang, int n_expert) {
    check_shape(f, n_lang, n_expert);
    RS_ASSERT(n_lang >= 2);
    std::vector<double> s((size_t)n_lang * (size_t)n_expert);
    for (int e = 0; e < n_expert; ++e) {
        // the largest and second-largest f over languages give max_{L'≠L} for every L in one pass
        double best = -std::numeric_limits<double>::infinity(), second = best;
        int best_lang = -1;
        for (int l = 0; l < n_lang; ++l) {
            const double v = freq(f, n_expert, l, e);
            if (v > best)
                second = best, best = v, best_lang = l;
            else if (v > second)
                second = v;
        }
        for (int l = 0; l < n_lang; ++l) {
            // specificity(e, L) = f_L(e) − max_{L'≠L} f_L'(e)  (RISE, our operationalisation)
            const double other_max = l == best_lang ? second : best;
            s[(size_t)l * (size_t)n_expert + (size_t)e] = freq(f, n_expert, l, e) - other_max;
        }
    }
    return s;
}

std::vector<double> overlap_scores(std::span<const double> f, int n_lang, int n_expert) {
    check_shape(f, n_lang, n_expert);
    std::vector<double> o((size_t)n_expert);
    for (int e = 0; e < n_expert; ++e) {
        // overlap(e) = min_L f_L(e)  (RISE, our operationalisation)
        double m = freq(f, n_expert, 0, e);
        for (int l = 1; l < n_lang; ++l) m = std::min(m, freq(f, n_expert, l, e));
        o[(size_t)e] = m;
    }
    return o;
}

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
    check_shape(f, n_lang, n_expert);
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

std::vector<SelectedExpert> tripartite_selection(std::span<const std::vector<double>> f_per_layer, int n_lang,
                                                 int n_expert, int target_lang, int mid_first, int mid_last,
                                                 const TripartiteOptions & opt) {
    RS_ASSERT(target_lang >= 0 && target_lang < n_lang && mid_first <= mid_last);
    RS_ASSERT(opt.n_specific >= 0 && opt.n_universal >= 0);
    std::vector<SelectedExpert> out;
    for (size_t l = 0; l < f_per_layer.size(); ++l) {
        const std::vector<double> & f = f_per_layer[l];
        check_shape(f, n_lang, n_expert);
        const bool middle = (int)l >= mid_first && (int)l <= mid_last;
        // middle layers: universal experts by overlap; shallow/deep layers: specific experts by specificity
        std::vector<double> score;
        if (middle) {
            score = overlap_scores(f, n_lang, n_expert);
        } else {
            const std::vector<double> s = specificity_scores(f, n_lang, n_expert);
            const auto first = s.begin() + (ptrdiff_t)target_lang * n_expert;
            score.assign(first, first + n_expert);
        }
        const int n = middle ? opt.n_universal : opt.n_specific;
        for (const int e : top_experts(score, n)) {
            if (!(score[(size_t)e] > 0.0)) break;  // ranked best first: the rest score ≤ 0 too
            out.push_back(SelectedExpert{(int)l, e, middle ? ExpertRole::universal : ExpertRole::specific,
                                         score[(size_t)e]});
        }
    }
    return out;
}

SharedExclusive shared_and_exclusive(std::span<const double> f, int n_lang, int n_expert, double threshold) {
    check_shape(f, n_lang, n_expert);
    SharedExclusive out;
    out.exclusive.resize((size_t)n_lang);
    out.shared_mass.assign((size_t)n_lang, 0.0);
    out.exclusive_mass.assign((size_t)n_lang, 0.0);
    std::vector<double> total((size_t)n_lang, 0.0);
    for (int e = 0; e < n_expert; ++e) {
        int n_above = 0, only = -1;
        for (int l = 0; l < n_lang; ++l) {
            total[(size_t)l] += freq(f, n_expert, l, e);
            if (freq(f, n_expert, l, e) > threshold) ++n_above, only = l;
        }
        if (n_above == n_lang) {
            out.shared.push_back(e);
            for (int l = 0; l < n_lang; ++l) out.shared_mass[(size_t)l] += freq(f, n_expert, l, e);
        } else if (n_above == 1) {
            out.exclusive[(size_t)only].push_back(e);
            out.exclusive_mass[(size_t)only] += freq(f, n_expert, only, e);
        }
    }
    for (int l = 0; l < n_lang; ++l) {
        if (!(total[(size_t)l] > 0.0)) {
            out.shared_mass[(size_t)l] = out.exclusive_mass[(size_t)l] = 0.0;
            continue;
        }
        out.shared_mass[(size_t)l] /= total[(size_t)l];
        out.exclusive_mass[(size_t)l] /= total[(size_t)l];
    }
    return out;
}

}  // namespace rs
