// Per-token routing statistics of one sequence and one MoE layer (Bandarkar et al. 2025, §4.4 and §5.2):
// routing entropy H(p_t), token routing consistency (Jaccard of the top-k sets of random token pairs) and
// the activation frequency a_i/L_i, plus streaming accumulators for their corpus-level values.
//
// Accumulators add per-sequence results; to be deterministic for any thread count, compute per-sequence
// results in parallel, store them, and add them in sequence order (metrics.h does this).
// Limits: expert ids must lie in [0, E) (rs::Error otherwise); top-k sets are compared as sets (duplicate
// ids within one row count once).
// Implemented in src/metrics/sequence_stats.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "routescope/metrics_rows.h"

namespace rs {

// ---------------------------------------------------------------------------------------------------
// Routing entropy (§4.4): mean over tokens of H(p_t)

// Σ_t H(p_t) over the sequence (nats).
double token_entropy_sum(const ProbRows & p);

struct EntropyAccumulator {
    double sum = 0.0;  // Σ over tokens of H(p_t)
    int64_t n_tok = 0;

    void add(double entropy_sum, int64_t n) { sum += entropy_sum, n_tok += n; }
    void add(const ProbRows & p) { add(token_entropy_sum(p), p.n_rows); }
    void merge(const EntropyAccumulator & o) { add(o.sum, o.n_tok); }
    std::optional<double> mean() const;  // nullopt when no token was added
};

// ---------------------------------------------------------------------------------------------------
// Token routing consistency (§4.4)

inline constexpr int kConsistencyPairs = 500;

// Jaccard |A ∩ B| / |A ∪ B| of two id sets (duplicates ignored); nullopt when both are empty.
std::optional<double> jaccard(std::span<const int16_t> a, std::span<const int16_t> b);

// Per sequence: draw n_pairs ordered pairs (i, j), i ≠ j, uniformly with replacement from the sequence's
// positions, and average the Jaccard similarity of their top-k sets. The draws come from
// SplitMix64(derive_seed(seed, seq_index, layer)): position i = uniform_below(L), then
// j' = uniform_below(L − 1), j = j' + (j' ≥ i). Undefined (nullopt) when the sequence has < 2 tokens.
std::optional<double> token_consistency(const TopkRows & topk, uint64_t seed, int64_t seq_index, int layer,
                                        int n_pairs = kConsistencyPairs);

struct ConsistencyAccumulator {
    double sum = 0.0;         // Σ of per-sequence consistency over defined sequences
    int64_t n_defined = 0;    // sequences with ≥ 2 tokens
    int64_t n_undefined = 0;  // sequences with < 2 tokens (reported, not averaged)

    void add(std::optional<double> c) {
        if (!c) {
            ++n_undefined;
            return;
        }
        sum += *c;
        ++n_defined;
    }
    void merge(const ConsistencyAccumulator & o) {
        sum += o.sum, n_defined += o.n_defined, n_undefined += o.n_undefined;
    }
    std::optional<double> mean() const;  // mean over defined sequences
};

// ---------------------------------------------------------------------------------------------------
// Activation frequency (§5.2, Eq. 3 inputs)

// a_i: for each expert, the number of tokens whose top-k contains it (once per token). out has E entries.
void activation_counts(const TopkRows & topk, int n_expert, std::span<int64_t> out);

// a_i / L_i per expert; false (out untouched) when the sequence has no token.
bool activation_frequency(const TopkRows & topk, int n_expert, std::span<double> out);

// Sequence-averaged frequency: (1/N) Σ_i a_i/L_i, the two terms of Eq. 3.
struct ActivationAccumulator {
    int n_expert = 0;
    std::vector<double> sum_freq;  // [E] Σ_i a_i/L_i
    int64_t n_seq = 0;             // sequences with ≥ 1 token

    explicit ActivationAccumulator(int e = 0) : n_expert(e), sum_freq((size_t)e, 0.0) {}
    void add(std::span<const double> freq);  // one sequence's a_i/L_i
    void add(const TopkRows & topk);         // computes a_i/L_i; empty sequences are skipped
    void merge(const ActivationAccumulator & o);
    std::vector<double> mean() const;  // [E]; empty when n_seq == 0
};

// Token-pooled counts: f(e) = Σ_i a_i(e) / Σ_i L_i, the frequency RISE and Chen et al. select from (rise.h,
// chen.h) and routing isolation compares (language_experts.h). Integer sums, so adding in any order gives
// the same result.
struct TokenActivationCounter {
    int n_expert = 0;
    std::vector<int64_t> count;  // [E]
    int64_t n_tok = 0;

    explicit TokenActivationCounter(int e = 0) : n_expert(e), count((size_t)e, 0) {}
    void add(std::span<const int64_t> counts, int64_t n);
    void add(const TopkRows & topk);
    void merge(const TokenActivationCounter & o) { add(o.count, o.n_tok); }
    std::vector<double> frequency() const;  // [E]; empty when n_tok == 0
};

}  // namespace rs
