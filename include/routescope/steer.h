// Router steering (docs/steering-and-evaluation.md; Bandarkar et al. 2025, Section 5.3 / Appendix A.6):
// per token and targeted MoE layer, modify the pre-gating logits z (gpt-oss: the biased logits)
// before gating. Pure code: the engine's eval callback calls steer_logits on each column.
//
// Spec (JSON):
//   {"seed": 0, "experts_file": "experts.json",            // optional: named sets from `experts`
//    "rules": [{"layers": "4:8", "experts": [3, 7], "method": "force"},
//              {"layers": "all", "set": "multilingual", "method": "soft", "lambda": 0.5},
//              {"layers": [2, 5], "experts": {"2": [1], "5": [4, 6]}, "method": "suppress"},
//              {"layers": "10:39", "set": "shared", "method": "chen", "lambda": 0.022},
//              {"layers": "all", "set": "activate", "deactivate_set": "deactivate", "method": "steermoe"}]}
// layers: "a:b" (block indices, inclusive), "all", an integer or a list; rules may target only MoE
// blocks. experts: a list (same set in every layer), a {"<layer>": [ids]} map, or "set": a name
// in experts_file (its "sets" object, resolved relative to the spec's directory).
// chen takes each expert's coefficient s_e from experts_file's "coefficients" ({"<layer>": {"<e>": s}},
// written by `experts --method chen`) or from the rule's own "coefficients" map (which then also names
// the experts). steermoe activates "experts"/"set" and deactivates "deactivate"/"deactivate_set".
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "routescope/model.h"

namespace rs {

enum class SteerMethod { soft, force, suppress, chen, steermoe };

struct SteerOp {
    SteerMethod method = SteerMethod::soft;
    double lambda = 0.0;  // soft: z_k += λ·std(z); λ < 0 suppresses softly. chen: z_k += λ·s_k·|z_k|
    double margin = 1.0;  // suppress: z_k = min(z) − margin
    std::vector<int> experts;  // steermoe: the activated experts
    std::vector<double> coef;  // chen: s_k of each of `experts`
    std::vector<int> off;      // steermoe: the deactivated experts
};

// A validated spec, compiled per block: ops[il] applies to block il in rule order.
struct SteerPlan {
    uint64_t seed = 0;
    std::vector<std::vector<SteerOp>> ops;  // [n_layer]
    std::vector<std::string> warnings;      // valid but worth telling (e.g. forcing more than top-k)
    bool empty() const;
    // Experts forced in block il: the engine also fixes the selected ids there (bias/groups).
    std::vector<int> forced_experts(int il) const;
    bool has_force(int il) const;
    int n_steered_experts() const;   // (block, expert) pairs targeted by any op
    nlohmann::json to_json() const;  // for manifests
};

// Parses and validates a spec against the model; throws rs::Error listing what is wrong
// (unknown method, missing λ, layer or expert out of range, non-MoE layer, empty set, unknown set).
SteerPlan load_steer_plan(const std::string & path, const ModelInfo & model);
SteerPlan steer_plan_from_json(const nlohmann::json & spec, const ModelInfo & model,
                               const std::string & base_dir);

// Applies the ops of one block to the logits of one token, in place. `token_key` makes the force
// jitter ε ~ N(0, 1e-6) reproducible and independent of batching (e.g. hash of position and token).
//   soft:     z_k ← z_k + λ·s,  s = population std of the E logits (before this op)
//   force:    z_k ← max(z) + ε_k
//   suppress: z_k ← min(z) − margin
//   chen:     z_k ← z_k + λ·s_k·|z_k|            (Chen et al. 2026, routing-guided steering)
//   steermoe: z ← log_softmax(z); then z_a ← max(z) + 0.01 for activated a, z_d ← min(z) − 0.01 for
//             deactivated d, max and min of the unmodified log-softmax (SteerMoE, Fayyaz et al. 2025)
void steer_logits(std::span<float> z, std::span<const SteerOp> ops, uint64_t seed, int il,
                  uint64_t token_key);

}  // namespace rs
