// Behaviour-linked experts of SteerMoE (Fayyaz et al. 2025, "Steering MoE LLMs via Expert (De)Activation"),
// as the authors' code defines them. The upstream repository (adobe-research/SteerMoE) is not in the
// index searched; a fork with the same files is: github.com/JACKPURCELL/SteerMoE @ 0986afb7,
// custom_steering.ipynb (calc_risk_diff, "4. Detect Experts") and src/utils.py (steer_moe).
//
// Input: per layer, for each side of a paired data set (behaviour A: messages_0, B: messages_1) the number
// of tokens whose top-k contains e (a) and the number of tokens of the side (n = a + d):
//   risk difference RD(e) = a_A(e)/n_A − a_B(e)/n_B       (P(e ∈ top-k | A) − P(e ∈ top-k | B))
// Experts of all layers are ranked by |RD| (descending; ties here: smaller (layer, expert) first, the
// authors' pandas quicksort leaves them unspecified). steer_moe then takes the first n_activate with RD > 0
// (activated when steering towards A) and the first n_deactivate with RD < 0 (deactivated); with
// reverse_effect RD is negated first (steer towards B). It raises when fewer exist than asked for. When
// the plan is built (set_moe), an RD > 0 expert is only activated while its layer has fewer than top_k
// activated experts; the rest are dropped. Only the tokens of each side's target text (the assistant reply
// that shows the behaviour) are counted in the notebook; routescope counts every recorded token of the
// sequences the two selectors pick.
// Implemented in src/metrics/steermoe.cpp.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace rs {

// [E] RD(e) = count_a(e)/n_a − count_b(e)/n_b of one layer; n_a, n_b > 0.
std::vector<double> steermoe_risk_difference(std::span<const int64_t> count_a, int64_t n_a,
                                             std::span<const int64_t> count_b, int64_t n_b);

struct SteerMoeExpert {
    int layer = 0;  // index into the per-layer list given
    int expert = 0;
    double risk_difference = 0.0;  // after the reverse flag
};

struct SteerMoeOptions {
    int n_activate = 0;    // num_pos_experts: top experts with RD > 0
    int n_deactivate = 0;  // num_neg_experts: top experts with RD < 0
    bool reverse = false;  // reverse_effect: negate RD (steer towards side B)
    int top_k = 0;         // cap on activated experts per layer (the model's top-k); ≤ 0: no cap
};

struct SteerMoeSelection {
    std::vector<SteerMoeExpert> ranking;     // every (layer, expert) by |RD| descending
    std::vector<SteerMoeExpert> activate;    // in ranking order, after the per-layer top-k cap
    std::vector<SteerMoeExpert> deactivate;  // in ranking order
    int n_dropped_by_cap = 0;                // RD > 0 experts chosen but over their layer's top-k
    int n_positive = 0, n_negative = 0;      // experts with RD > 0 and < 0 (what could be asked for)
};

// rd_per_layer[l]: the [E] RD of layer l. Does not throw: compare n_positive/n_negative with the request.
SteerMoeSelection steermoe_select(std::span<const std::vector<double>> rd_per_layer,
                                  const SteerMoeOptions & opt);

}  // namespace rs
