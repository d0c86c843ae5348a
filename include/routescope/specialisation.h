// Expert specialisation (Bandarkar et al. 2025, §5.2): the difference Δ in activation relative frequency
// between two corpora (Eq. 3), specialised experts {e : Δ_e > τ}, multilingual experts (Δ_e > τ for any
// non-pivot language vs the pivot), task experts (task corpus vs a generic baseline) and the overlaps of
// such sets (Finding 5: multilingual and task experts do not overlap for τ ≥ 0.3).
//
// Expert sets are sorted, duplicate-free lists of expert ids of one layer. Limits: Δ is computed from
// sequence-averaged frequencies (ActivationAccumulator::mean, token_routing.h), exactly as Eq. 3.
// Implemented in src/metrics/expert_sets.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "routescope/token_routing.h"

namespace rs {

// Eq. 3: Δ = (1/N1) Σ_i a_i/L_i (corpus 1) − (1/N2) Σ_j a_j/L_j (corpus 2), per expert, in [−1, 1].
// mean1, mean2 are the two sequence-averaged frequency vectors (same length).
std::vector<double> activation_delta(std::span<const double> mean1, std::span<const double> mean2);

// Same from two accumulators; empty when either corpus has no sequence.
std::vector<double> activation_delta(const ActivationAccumulator & c1, const ActivationAccumulator & c2);

// {e : Δ_e > τ}, ascending ids.
std::vector<int> specialised_experts(std::span<const double> delta, double tau);

// Multilingual experts of one layer: e such that Δ_e(lang vs pivot) > τ for at least one non-pivot
// language. deltas: [n_lang × E] row per non-pivot language (the pivot's own row must not be included).
std::vector<int> multilingual_experts(std::span<const double> deltas, int n_expert, double tau);

// Overlap of two expert sets (sorted, duplicate-free).
struct SetOverlap {
    int64_t n_a = 0, n_b = 0;
    int64_t n_intersection = 0;
    int64_t n_union = 0;
    std::optional<double> jaccard;  // |A ∩ B| / |A ∪ B|; nullopt when both sets are empty
    std::vector<int> intersection;  // ascending
};

SetOverlap set_overlap(std::span<const int> a, std::span<const int> b);

// Expert sets per layer (e.g. selected with one τ for every layer); layer l of `a` is compared with layer
// l of `b` and the totals summed. Both lists must have the same number of layers.
struct LayeredOverlap {
    std::vector<SetOverlap> per_layer;
    SetOverlap total;  // counts summed over layers; intersection left empty; jaccard of the totals
};

LayeredOverlap layered_overlap(std::span<const std::vector<int>> a, std::span<const std::vector<int>> b);

}  // namespace rs
