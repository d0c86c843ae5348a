// Language routing isolation of one MoE layer: how disjoint two languages' most used experts are. RISE
// (Zheng et al. 2026, arXiv:2604.03592) names the phenomenon — high- and low-resource languages route to
// largely disjoint expert sets — but its code (github.com/init-neok/rise @ 9d7cb274) computes no isolation
// score, so this measure is ours (docs/metrics.md): the Jaccard index of the two languages' top-m sets,
// m = the model's top-k by default; low Jaccard = strong isolation. RISE's own specificity, overlap and
// subnetwork selection are in rise.h; Chen et al.'s shared / exclusive experts in chen.h.
//
// Input everywhere: f, a [n_lang × E] matrix of token-pooled activation frequencies of one layer,
//   f_L(e) = (tokens of language L whose top-k contains e) / (tokens of L)   (TokenActivationCounter).
// Ties in every top-m are broken by the smaller expert id.
// Implemented in src/metrics/expert_sets.cpp.
#pragma once

#include <span>
#include <vector>

namespace rs {

// The m highest-scoring experts, best first (ties: smaller id first). m is capped at E.
std::vector<int> top_experts(std::span<const double> scores, int m);

// Jaccard of the top-m sets of two languages' frequencies (one layer); in [0, 1].
double routing_isolation(std::span<const double> f_a, std::span<const double> f_b, int m);

// [n_lang × n_lang] routing_isolation of every pair (1 on the diagonal).
std::vector<double> routing_isolation_matrix(std::span<const double> f, int n_lang, int n_expert, int m);

}  // namespace rs
