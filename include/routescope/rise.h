// RISE expert subnetwork selection (Zheng et al. 2026, "Unveiling Language Routing Isolation in Multilingual
// MoE Models for Interpretable Subnetwork Adaptation", arXiv:2604.03592, Algorithm 1 and Eq. 8), as the
// authors' code defines it: github.com/init-neok/rise @ 9d7cb274, rise/expert_selector.py (RISESelector)
// and rise/routing_stats.py (the frequencies). The seed citation's "Zhang et al." is this paper; the
// repository and arXiv entry name Kening Zheng as first author.
//
// Input: per layer l an [n_lang × E] matrix of activation frequencies
//   a_L(l, e) = (tokens of language L whose top-k at layer l contains e) / (tokens of L)
// (routing_stats.py: top-k of the float router logits, padding excluded; in routescope: every recorded
// token, TokenActivationCounter). Per layer and expert, with ā = mean over ALL languages (target included):
//   specificity S(e)  = a_target(e) / ā(e)                     (ā = 0 → divided by 1e-8, so S = 0)
//   overlap     O(e)  = 1 / (1 + σ(e)/μ(e)),  σ the population standard deviation over languages (np.std),
//                       μ = ā                                  (μ = 0 → σ/1e-8 = 0, so O = 1)
//   composite   Spec(e) = S(e)·(1 + α·a_target(e)),  Ovlp(e) = O(e)·(1 + α·ā(e))        (Eq. 8, α = 10)
// Zones by depth over the L layers given: L1 = round(0.375·L), L2 = round((0.375 + 0.25)·L) with Python's
// round (half to even): layers [0, L1) shallow, [L1, L2) middle, [L2, L) deep. (The module docstring of
// expert_selector.py writes the paper's zones as [0, L1], (L1, L2], (L2, L−1], i.e. layer L1 shallow; its
// code, followed here, makes layer L1 the first middle layer. The paper itself is not at hand.)
// Budget K: shallow ⌊0.35·K⌋, middle ⌊0.25·K⌋, deep the rest; a zone's budget above its capacity
// (layers × E) spills into the zone with the most room (the first of shallow, middle, deep on a tie).
// Selection: per zone, every (layer, expert) of the zone ranked by its composite score — Spec in shallow and
// deep, Ovlp in middle — across all layers of the zone, the budget's best kept; ties keep (layer, expert)
// order (Python's stable sort). Result sorted by (layer, expert).
// Implemented in src/metrics/rise.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace rs {

enum class RiseZone { shallow, middle, deep };
const char * rise_zone_name(RiseZone z);

// [E] ā(e): mean of a over the n_lang rows of one layer's [n_lang × E] matrix.
std::vector<double> rise_mean_frequency(std::span<const double> a, int n_lang, int n_expert);

// [E] S(e) = a_target(e) / ā(e) (0 where ā = 0).
std::vector<double> rise_specificity(std::span<const double> a, int n_lang, int n_expert, int target);

// [E] O(e) = 1 / (1 + σ/μ), population σ (1 where μ = 0).
std::vector<double> rise_overlap(std::span<const double> a, int n_lang, int n_expert);

// Python's round() of a non-negative value: nearest integer, ties to even (round(1.5) = 2, round(4.5) = 4).
int round_half_even(double x);

struct RiseOptions {
    int64_t budget = 0;            // K, total experts to select (> 0)
    double alpha = 10.0;           // α of Eq. 8
    double shallow_ratio = 0.375;  // fraction of layers in the shallow zone
    double middle_ratio = 0.25;    // fraction of layers in the middle zone (deep: the rest)
    double shallow_budget = 0.35;  // fraction of K for the shallow zone
    double middle_budget = 0.25;   // fraction of K for the middle zone (deep: the rest)
};

// Zone boundaries over n_layer layers: {L1, L2}; layer l is shallow if l < L1, middle if l < L2, else deep.
std::array<int, 2> rise_zone_bounds(int n_layer, double shallow_ratio, double middle_ratio);

// Budgets per zone {shallow, middle, deep} after the capacity spill-over; throws rs::Error when K exceeds
// the whole pool (the authors' ValueError).
std::array<int64_t, 3> rise_budgets(int64_t budget, double shallow_budget, double middle_budget,
                                    const std::array<int64_t, 3> & capacity);

struct RiseExpert {
    RiseZone zone = RiseZone::shallow;
    int layer = 0;  // index into the per-layer list given
    int expert = 0;
    double score = 0.0;  // composite: Spec (shallow, deep) or Ovlp (middle)
    double raw = 0.0;    // S (shallow, deep) or O (middle)
};

struct RiseSelection {
    std::array<int, 2> bounds{};       // {L1, L2}
    std::array<int64_t, 3> budgets{};  // after spill-over
    std::vector<RiseExpert> experts;   // sorted by (layer, expert)
};

// a_per_layer[l]: the [n_lang × E] frequency matrix of layer l (n_lang ≥ 2, as the authors require).
RiseSelection rise_select(std::span<const std::vector<double>> a_per_layer, int n_lang, int n_expert,
                          int target, const RiseOptions & opt);

}  // namespace rs
