// Shared and language-exclusive experts of Chen et al. 2026 ("Understanding Multilingualism in
// Mixture-of-Experts LLMs: Routing Mechanism, Expert Specialization, and Layerwise Steering"), as the
// authors' code defines them: github.com/conctsai/Multilingualism-in-Mixture-of-Experts-LLMs @ a3be2b66,
// intervention/vllm_intervention_flores.py (ablation_experts; the mgsm/xquad copies are identical) and
// steer/vllm_steer_polymath.py (aggregate_experts, get_target_shared_experts).
//
// Input: one layer's [n_lang × E] activation frequencies f_L(e) = activation_tokens / total_tokens
// (modeling_qwen3_moe.py MoERecoder: tokens of L whose top-k contains e, over the non-padding tokens of L).
//   1. keep each language's k most frequent experts of the layer, zero the rest (torch.topk over experts;
//      ties here: the smaller expert id first)               m_L(e) = f_L(e) if e ∈ top-k(f_L) else 0
//   2. normalise across the languages considered ("shares")  s_L(e) = m_L(e) / (Σ_L' m_L'(e) + 1e-10)
//   3. shared:                any_L s_L(e) > 0  and  every s_L(e) < θ        (strict on both sides)
//      exclusive to targets T: Σ_{L ∈ T} s_L(e) > θ                           (intervention: strict)
// Parameters as the authors ran them: interventions k = 15, θ = 0.4, shares over all recorded languages
// (scripts/run_intervention_*.sh); routing-guided steering k = 20, θ = 0.7, shares over the target
// languages only (en, zh), steering coefficient s_e = the first target's share, layers 10–39
// (scripts/run_steer_polymath.sh, --shared). aggregate_experts (steering without --shared) keeps
// Σ_T s ≥ θ instead (`value < thr` is skipped); routescope uses the strict form of the interventions.
// Implemented in src/metrics/chen.cpp.
#pragma once

#include <span>
#include <vector>

namespace rs {

// [n_lang × E] shares s_L(e) of one layer after the per-language top-k mask (steps 1–2 above).
std::vector<double> chen_shares(std::span<const double> f, int n_lang, int n_expert, int k);

// Shared experts of one layer from its shares: some share > 0 and every share < θ; ascending ids.
std::vector<int> chen_shared_experts(std::span<const double> shares, int n_lang, int n_expert,
                                     double threshold);

// Experts exclusive to the languages `targets` (indices into the rows): Σ_{L ∈ targets} s_L(e) > θ;
// ascending ids.
std::vector<int> chen_exclusive_experts(std::span<const double> shares, int n_lang, int n_expert,
                                        std::span<const int> targets, double threshold);

}  // namespace rs
