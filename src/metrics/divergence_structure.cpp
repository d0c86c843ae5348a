// Structure of the divergence results: average-linkage (UPGMA) clustering of languages with dendrogram
// order and flat cuts (cluster.h), and the automatic middle-layer range from the per-layer divergence
// curve (middle_layers.h documents the rule).
//
// Clustering is the naive algorithm: keep current clusters in slots with their pairwise distances, merge
// the closest pair, update the merged slot with the size-weighted average (Lance–Williams for UPGMA).
// The middle-layer rule replaces the paper's by-eye choice (Bandarkar et al. 2025, §5.4: "we use the
// divergence graphs to demarcate which layers constitute this middle zone").
// Limits: clustering is O(n³), fine for language-level matrices (n ≤ a few hundred); the middle-layer rule
// does no smoothing — a single noisy spike above θ ends the run; raise α for noisy curves (e.g. OLMoE,
// Appendix A.2) or override the range by hand.
#include "routescope/cluster.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "routescope/common.h"
#include "routescope/middle_layers.h"

namespace rs {

// ===================================================================================================
// Average-linkage clustering (cluster.h)

std::vector<Merge> average_linkage(std::span<const double> dist, int n) {
    RS_ASSERT(n >= 0 && dist.size() == (size_t)n * (size_t)n);
    std::vector<Merge> merges;
    if (n <= 1) return merges;
    // slot s holds one current cluster; d[s·n + t] (s < t) is the average linkage distance between slots
    std::vector<double> d(dist.begin(), dist.end());
    for (int s = 0; s < n; ++s)
        for (int t = s + 1; t < n; ++t) {
            RS_ASSERT(std::isfinite(d[(size_t)s * n + t]) && d[(size_t)s * n + t] >= 0.0);
            d[(size_t)t * n + s] = d[(size_t)s * n + t];  // use the upper triangle only
        }
    std::vector<int> id(n), size(n, 1);
    std::iota(id.begin(), id.end(), 0);
    std::vector<bool> active((size_t)n, true);

    for (int step = 0; step < n - 1; ++step) {
        int best_s = -1, best_t = -1;
        double best = std::numeric_limits<double>::infinity();
        std::pair<int, int> best_ids{0, 0};
        for (int s = 0; s < n; ++s) {
            if (!active[(size_t)s]) continue;
            for (int t = s + 1; t < n; ++t) {
                if (!active[(size_t)t]) continue;
                const double v = d[(size_t)s * n + t];
                const std::pair<int, int> ids{std::min(id[s], id[t]), std::max(id[s], id[t])};
                if (best_s < 0 || v < best || (v == best && ids < best_ids)) {
                    best = v;
                    best_s = s;
                    best_t = t;
                    best_ids = ids;
                }
            }
        }
        RS_ASSERT(best_s >= 0);
        const int new_size = size[best_s] + size[best_t];
        merges.push_back(Merge{best_ids.first, best_ids.second, best, new_size});
        // Lance–Williams update for average linkage: d(u∪v, w) = (|u| d(u,w) + |v| d(v,w)) / (|u| + |v|)
        for (int w = 0; w < n; ++w) {
            if (!active[(size_t)w] || w == best_s || w == best_t) continue;
            const double v = ((double)size[best_s] * d[(size_t)best_s * n + w] +
                              (double)size[best_t] * d[(size_t)best_t * n + w]) /
                             (double)new_size;
            d[(size_t)best_s * n + w] = v;
            d[(size_t)w * n + best_s] = v;
        }
        id[best_s] = n + step;
        size[best_s] = new_size;
        active[(size_t)best_t] = false;
    }
    return merges;
}

std::vector<int> dendrogram_leaf_order(std::span<const Merge> merges, int n) {
    RS_ASSERT(n >= 0);
    std::vector<int> order;
    if (n == 0) return order;
    RS_ASSERT(merges.size() == (size_t)(n - 1));
    order.reserve((size_t)n);
    std::vector<int> stack{n == 1 ? 0 : n + (int)merges.size() - 1};
    while (!stack.empty()) {
        const int c = stack.back();
        stack.pop_back();
        if (c < n) {
            order.push_back(c);
            continue;
        }
        const Merge & m = merges[(size_t)(c - n)];
        stack.push_back(m.b);  // visited second
        stack.push_back(m.a);  // visited first
    }
    RS_ASSERT(order.size() == (size_t)n);
    return order;
}

std::vector<int> cut_tree(std::span<const Merge> merges, int n, int k) {
    RS_ASSERT(n >= 1 && k >= 1 && k <= n && merges.size() == (size_t)(n - 1));
    // union-find over leaves; cluster id c ≥ n is represented by any of its leaves
    std::vector<int> parent((size_t)n), rep((size_t)(2 * n - 1));
    std::iota(parent.begin(), parent.end(), 0);
    for (int i = 0; i < n; ++i) rep[(size_t)i] = i;
    auto find = [&](int x) {
        while (parent[(size_t)x] != x) x = parent[(size_t)x] = parent[(size_t)parent[(size_t)x]];
        return x;
    };
    for (int i = 0; i < n - k; ++i) {
        const Merge & m = merges[(size_t)i];
        const int ra = find(rep[(size_t)m.a]), rb = find(rep[(size_t)m.b]);
        parent[(size_t)std::max(ra, rb)] = std::min(ra, rb);
        rep[(size_t)(n + i)] = std::min(ra, rb);
    }
    // label clusters in order of their smallest leaf (the union-find root is always the smallest leaf)
    std::vector<int> label((size_t)n, -1), root_label((size_t)n, -1);
    int next = 0;
    for (int i = 0; i < n; ++i) {
        const int r = find(i);
        if (root_label[(size_t)r] < 0) root_label[(size_t)r] = next++;
        label[(size_t)i] = root_label[(size_t)r];
    }
    return label;
}

// ===================================================================================================
// Middle-layer range (middle_layers.h)

std::optional<MiddleLayerRange> middle_layer_range(std::span<const std::optional<double>> curve,
                                                   const MiddleLayerOptions & opt) {
    RS_ASSERT(opt.alpha >= 0.0 && opt.alpha <= 1.0);
    const int n = (int)curve.size();
    auto ok = [&](int l) { return curve[(size_t)l].has_value() && std::isfinite(*curve[(size_t)l]); };
    // 1. interior
    const bool trim = opt.exclude_ends && n >= 3;
    const int i_first = trim ? 1 : 0;
    const int i_last = trim ? n - 2 : n - 1;

    // 2. lo, l* over the interior; hi over the whole curve
    MiddleLayerRange r;
    r.argmin = -1;
    for (int l = i_first; l <= i_last; ++l) {
        if (!ok(l)) continue;
        if (r.argmin < 0 || *curve[(size_t)l] < r.lo) r.argmin = l, r.lo = *curve[(size_t)l];
    }
    if (r.argmin < 0) return std::nullopt;
    r.hi = r.lo;
    for (int l = 0; l < n; ++l)
        if (ok(l)) r.hi = std::max(r.hi, *curve[(size_t)l]);

    // 3. threshold
    r.threshold = r.lo + opt.alpha * (r.hi - r.lo);

    // 4. the run of defined layers with d ≤ θ containing l*, inside the interior
    auto low = [&](int l) { return ok(l) && *curve[(size_t)l] <= r.threshold; };
    r.first = r.argmin;
    while (r.first - 1 >= i_first && low(r.first - 1)) --r.first;
    r.last = r.argmin;
    while (r.last + 1 <= i_last && low(r.last + 1)) ++r.last;
    return r;
}

std::optional<MiddleLayerRange> middle_layer_range(std::span<const double> curve,
                                                   const MiddleLayerOptions & opt) {
    std::vector<std::optional<double>> c(curve.begin(), curve.end());
    return middle_layer_range(c, opt);
}

std::vector<std::optional<double>> mean_over_languages(std::span<const std::optional<double>> div, int n_lang,
                                                       int n_layer) {
    RS_ASSERT(n_lang >= 0 && n_layer >= 0 && div.size() == (size_t)n_lang * (size_t)n_layer);
    std::vector<std::optional<double>> out((size_t)n_layer);
    for (int l = 0; l < n_layer; ++l) {
        double sum = 0.0;
        int n = 0;
        for (int g = 0; g < n_lang; ++g) {
            const auto & v = div[(size_t)g * (size_t)n_layer + (size_t)l];
            if (v && std::isfinite(*v)) sum += *v, ++n;
        }
        if (n > 0) out[(size_t)l] = sum / (double)n;
    }
    return out;
}

}  // namespace rs
