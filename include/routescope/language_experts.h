// Language-level expert scores of one MoE layer: our operationalisation of RISE (Zhang et al. 2026,
// "Language Routing Isolation", specificity/overlap scores, tripartite selection) and of Chen et al. 2026
// (shared vs language-exclusive experts). Only the abstracts of both papers are at hand, so the formulas
// below are ours, named as such in reports (docs/metrics.md).
//
// Input everywhere: f, a [n_lang × E] matrix of token-pooled activation frequencies of one layer,
//   f_L(e) = (tokens of language L whose top-k contains e) / (tokens of L)   (TokenActivationCounter).
// Our operationalisation:
//   specificity(e, L) = f_L(e) − max_{L' ≠ L} f_L'(e)        (needs ≥ 2 languages)
//   overlap(e)        = min_L f_L(e)
//   routing isolation of (A, B) = Jaccard of the top-m sets of A and B (m = top-k by default);
//                       low Jaccard = strong isolation
//   tripartite: in shallow (before the middle range) and deep (after it) layers the top-n experts by
//               specificity for the target language (score > 0); in the middle layers the top-n by overlap
//               (score > 0)
//   Chen et al.: shared = f_L(e) > θ for every language; exclusive to L = f_L(e) > θ for L only.
// Ties in every top-n are broken by the smaller expert id.
// Implemented in src/metrics/expert_sets.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace rs {

// [n_lang × E]: specificity(e, L) = f_L(e) − max_{L'≠L} f_L'(e). Requires n_lang ≥ 2.
std::vector<double> specificity_scores(std::span<const double> f, int n_lang, int n_expert);

// [E]: overlap(e) = min_L f_L(e). Requires n_lang ≥ 1.
std::vector<double> overlap_scores(std::span<const double> f, int n_lang, int n_expert);

// The m highest-scoring experts, best first (ties: smaller id first). m is capped at E.
std::vector<int> top_experts(std::span<const double> scores, int m);

// Jaccard of the top-m sets of two languages' frequencies (one layer); in [0, 1].
double routing_isolation(std::span<const double> f_a, std::span<const double> f_b, int m);

// [n_lang × n_lang] routing_isolation of every pair (1 on the diagonal).
std::vector<double> routing_isolation_matrix(std::span<const double> f, int n_lang, int n_expert, int m);

// ---------------------------------------------------------------------------------------------------
// Tripartite selection (RISE, our operationalisation)

enum class ExpertRole { specific, universal };

struct SelectedExpert {
    int layer = 0;  // index into the per-layer list given
    int expert = 0;
    ExpertRole role = ExpertRole::specific;
    double score = 0.0;  // specificity for the target language, or overlap
};

struct TripartiteOptions {
    int n_specific = 8;   // per shallow/deep layer
    int n_universal = 8;  // per middle layer
};

// f_per_layer[l] is the [n_lang × E] frequency matrix of layer l; the middle range is [mid_first, mid_last]
// (inclusive, e.g. from middle_layer_range). Result ordered by layer, then by rank within the layer.
std::vector<SelectedExpert> tripartite_selection(std::span<const std::vector<double>> f_per_layer, int n_lang,
                                                 int n_expert, int target_lang, int mid_first, int mid_last,
                                                 const TripartiteOptions & opt = {});

// ---------------------------------------------------------------------------------------------------
// Shared vs language-exclusive experts (Chen et al. 2026, our operationalisation)

struct SharedExclusive {
    std::vector<int> shared;                  // f_L(e) > θ for every language, ascending
    std::vector<std::vector<int>> exclusive;  // [n_lang]: f_L(e) > θ for L and no other language
    std::vector<double> shared_mass;     // [n_lang]: Σ_{e shared} f_L(e) / Σ_e f_L(e) (0 if L has none)
    std::vector<double> exclusive_mass;  // [n_lang]: Σ_{e exclusive to L} f_L(e) / Σ_e f_L(e)
};

SharedExclusive shared_and_exclusive(std::span<const double> f, int n_lang, int n_expert, double threshold);

}  // namespace rs
