// Chen et al.'s shared / exclusive experts (chen.h) as
// github.com/conctsai/Multilingualism-in-Mixture-of-Experts-LLMs @ a3be2b66,
// intervention/vllm_intervention_flores.py (ablation_experts) computes them.
#include "routescope/chen.h"

#include <algorithm>
#include <numeric>

#include "language_matrix.h"
#include "routescope/common.h"

namespace rs {

namespace {

// the authors' denominator guard: activation_tokens.sum(dim=0) + 1e-10
constexpr double kShareEps = 1e-10;

}  // namespace

std::vector<double> chen_shares(std::span<const double> f, int n_lang, int n_expert, int k) {
    check_language_matrix(f, n_lang, n_expert);
    RS_ASSERT(k >= 1);
    std::vector<double> m((size_t)n_lang * (size_t)n_expert, 0.0);
    std::vector<int> ids((size_t)n_expert);
    const size_t keep = std::min((size_t)k, (size_t)n_expert);
    for (int l = 0; l < n_lang; ++l) {
        const auto row = f.subspan((size_t)l * n_expert, (size_t)n_expert);
        std::iota(ids.begin(), ids.end(), 0);
        // torch.topk(activation_tokens, k, dim=-1) then scatter: the k largest frequencies survive
        std::partial_sort(ids.begin(), ids.begin() + (ptrdiff_t)keep, ids.end(), [&](int a, int b) {
            return row[(size_t)a] != row[(size_t)b] ? row[(size_t)a] > row[(size_t)b] : a < b;
        });
        for (size_t i = 0; i < keep; ++i) m[(size_t)l * n_expert + ids[i]] = row[(size_t)ids[i]];
    }
    for (int e = 0; e < n_expert; ++e) {
        double sum = 0.0;
        for (int l = 0; l < n_lang; ++l) sum += m[(size_t)l * n_expert + e];
        // "normalize in the language dimension": m / (Σ_L m + 1e-10)
        for (int l = 0; l < n_lang; ++l) m[(size_t)l * n_expert + e] /= sum + kShareEps;
    }
    return m;
}

std::vector<int> chen_shared_experts(std::span<const double> shares, int n_lang, int n_expert,
                                     double threshold) {
    check_language_matrix(shares, n_lang, n_expert);
    std::vector<int> out;
    for (int e = 0; e < n_expert; ++e) {
        // torch.any(value > 0) and torch.all(value < thr)
        bool any = false, all = true;
        for (int l = 0; l < n_lang; ++l) {
            const double s = shares[(size_t)l * n_expert + e];
            any = any || s > 0.0;
            all = all && s < threshold;
        }
        if (any && all) out.push_back(e);
    }
    return out;
}

std::vector<int> chen_exclusive_experts(std::span<const double> shares, int n_lang, int n_expert,
                                        std::span<const int> targets, double threshold) {
    check_language_matrix(shares, n_lang, n_expert);
    std::vector<int> out;
    for (int e = 0; e < n_expert; ++e) {
        double s = 0.0;  // target = torch.sum(activation_tokens[target_idxs], dim=0); value > thr
        for (const int t : targets) {
            RS_ASSERT(t >= 0 && t < n_lang);
            s += shares[(size_t)t * n_expert + e];
        }
        if (s > threshold) out.push_back(e);
    }
    return out;
}

}  // namespace rs
