// The metrics library (rs_metrics): pure functions over routing traces, no llama.cpp and no trace I/O.
// This header includes every metric header and adds the streaming layer that the `analyze` command uses:
//   1. per shard, summarise each sequence at each MoE layer (summarise_sequence; in parallel with
//      parallel_map — results land in sequence order, whatever the thread count);
//   2. add the summaries, in sequence order, to per-(corpus or language, layer) LayerAccumulators;
//      keep the per-sequence importance q only where pairing needs it (divergence from the pivot);
//   3. after the last shard, read the layer values (entropy, consistency, Δ, frequencies, mean q) from
//      the accumulators and the paired divergence from the kept q.
// Memory is bounded by one shard plus the accumulators (O(n_layer·E) each) plus whatever q the caller keeps.
// Determinism: every floating-point sum runs in a fixed order, so results are bit-identical for any
// number of threads as long as the caller adds summaries in sequence order and merges partial
// accumulators in a fixed order (e.g. shard order).
// Implemented in src/metrics/sequence_stats.cpp.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "routescope/cluster.h"
#include "routescope/divergence.h"
#include "routescope/language_experts.h"
#include "routescope/metrics_rows.h"
#include "routescope/middle_layers.h"
#include "routescope/specialisation.h"
#include "routescope/stats.h"
#include "routescope/token_routing.h"

namespace rs {

// What a sequence's expert importance q_i pools per token (analyze --pooling):
//   softmax — the routing distribution p_t itself: q_i = (1/L_i) Σ_t p_t (Eq. 1, Bandarkar et al. 2025's
//             paper text, "the mean of the softmax of the router logits"; needs the full p_t);
//   gate    — the weight each selected expert actually gets, p_t masked to the token's top-k set and
//             renormalised over it, g_t,e = p_t,e / Σ_{j∈topk_t} p_t,j (0 outside the set), then averaged:
//             q_i = (1/L_i) Σ_t g_t. The authors' code: lucasbandarkar/xl_moe_alignment,
//             routing_analysis/get_routing_weights.py, calculate_total_actual_weight_per_sequence
//             ("scoring_func and renormalize are parameters of vllm's FusedMoE"; renormalize = True for
//             every model there), which their get_routing_weights.py uses for the default mode
//             "expert_importance" as well as "total_actual_weight". Needs only the top-k ids and their p.
enum class Pooling { softmax, gate };

struct SummaryOptions {
    uint64_t seed = 0;                          // consistency pairs: derive_seed(seed, seq_index, layer)
    int consistency_pairs = kConsistencyPairs;  // 500 as in §4.4
    Pooling pooling = Pooling::softmax;         // summarise_sequence_raw only; the reference is softmax
};

// One sequence at one MoE layer.
struct SequenceLayerStats {
    int64_t n_tok = 0;
    std::vector<double> importance;        // [E] q_i (Eq. 1); empty when n_tok == 0
    double entropy_sum = 0.0;              // Σ_t H(p_t) (gate pooling: Σ_t H(g_t))
    std::optional<double> pooled_entropy;  // H(q_i) (analyze --entropy pooled); nullopt without q
    std::optional<double> consistency;     // nullopt when n_tok < 2
    std::vector<int64_t> act_count;        // [E] a_i: tokens with e in their top-k
};

// seq_index: the sequence's position in corpus order (TraceSeq::index), so the consistency draws do not
// depend on sharding; layer: the MoE layer's position (0..n_moe−1).
SequenceLayerStats summarise_sequence_layer(const ProbRows & p, const TopkRows & topk, int64_t seq_index,
                                            int layer, const SummaryOptions & opt = {});

// Every MoE layer of one sequence stored as tokens [tok_begin, tok_begin + n_tok) of a trace shard:
// probs [T, n_moe, E], topk [T, n_moe, K]. Result has n_moe entries.
std::vector<SequenceLayerStats> summarise_sequence(std::span<const float> probs,
                                                   std::span<const int16_t> topk, int64_t tok_begin,
                                                   int64_t n_tok, int n_moe, int n_expert, int top_k,
                                                   int64_t seq_index, const SummaryOptions & opt = {});

// The same summaries computed in one streaming pass over a sequence's rows straight from the stored shard
// bytes (analyze's fast path, src/metrics/sequence_fast.cpp): probs as IEEE binary16 bit patterns (f16) or
// f32, [T, n_moe, E]; topk [T, n_moe, K]. Results are bit-identical to summarise_sequence on the same values
// widened to f32 — q, consistency and counts bit for bit (same sums in the same order; consistency compares
// top-k sets as bitmasks: same counts, same draws), Σ_t H(p_t) within ~1e-15 relative (each H(p_t) is summed
// in four interleaved partial sums, a fixed order) — p·log p of an f16 value comes from a table of the exact
// double products (2^16 entries, built once). Expert ids outside [0, E) raise rs::Error as in
// activation_counts.
// Neither set (a --store topk trace): importance stays empty and entropy_sum 0; LayerAccumulator then adds
// only consistency and activation counts.
//
// Pooling::gate (SummaryOptions) pools the renormalised top-k weights g_t instead (see Pooling): from the
// full p_t when given, else from topk_f16 / topk_f32, the p of the selected experts in the order of the
// ids (a --store topk trace). The selected set is the recorded top-k ids (a duplicated id counts once), so
// it is exactly k experts as in vLLM's fused top-k; the authors' mask p ≥ (k-th largest p) would also take
// experts tied with the k-th, which on stored f16 p would add experts the router did not select.
struct RawProbs {
    const uint16_t * f16 = nullptr;  // at most one of the two is set
    const float * f32 = nullptr;
    const uint16_t * topk_f16 = nullptr;  // [T, n_moe, K]: p of the selected experts (store topk)
    const float * topk_f32 = nullptr;
};
std::vector<SequenceLayerStats> summarise_sequence_raw(RawProbs probs, const int16_t * topk,
                                                       int64_t tok_begin, int64_t n_tok, int n_moe,
                                                       int n_expert, int top_k, int64_t seq_index,
                                                       const SummaryOptions & opt = {});

// a_i (activation_counts) of one sequence at each of the given MoE layer slots straight from a shard's topk
// [T, n_moe, K]: out[i·E + e] for slots[i]. Ids outside [0, E) raise rs::Error.
void activation_counts_raw(const int16_t * topk, int64_t tok_begin, int64_t n_tok, int n_moe, int top_k,
                           int n_expert, std::span<const int> slots, std::span<int64_t> out);

// IEEE binary16 → f32, exact (table lookup); the same values as the trace store's f16_to_f32.
float f16_bits_to_f32(uint16_t h);

// Corpus-level accumulators of one layer for one corpus or language.
struct LayerAccumulator {
    int n_expert = 0;
    int64_t n_seq = 0;           // sequences added (including empty ones)
    int64_t n_empty = 0;         // sequences with no token (no q, no frequency)
    EntropyAccumulator entropy;  // routing entropy (§4.4): mean over tokens of H(p_t)
    // mean over non-empty sequences of H(q_i) (analyze --entropy pooled; n_tok counts sequences here)
    EntropyAccumulator pooled_entropy;
    ConsistencyAccumulator consistency;  // token routing consistency (§4.4)
    ActivationAccumulator activation;    // sequence-averaged a_i/L_i, the terms of Eq. 3
    TokenActivationCounter tokens;       // token-pooled f(e) for RISE/Chen (language_experts.h)
    std::vector<double> importance_sum;  // [E] Σ_i q_i over non-empty sequences

    explicit LayerAccumulator(int e = 0);
    void add(const SequenceLayerStats & s);
    void merge(const LayerAccumulator & o);
    // corpus-mean importance (1/N) Σ_i q_i, the input of unpaired_divergence; empty when nothing was added
    std::vector<double> mean_importance() const;
};

// ---------------------------------------------------------------------------------------------------
// Deterministic parallel map

// Returns {f(0), …, f(n−1)} computed on n_threads threads (≤ 0: hardware concurrency). Every index runs
// even if some throw; afterwards the exception of the lowest failing index is rethrown, so the outcome
// does not depend on the thread count. R must be default-constructible; f must not share mutable state.
template <class R, class F>
std::vector<R> parallel_map(int64_t n, int n_threads, F && f) {
    std::vector<R> out((size_t)std::max<int64_t>(n, 0));
    if (n <= 0) return out;
    if (n_threads <= 0) n_threads = (int)std::max(1u, std::thread::hardware_concurrency());
    n_threads = (int)std::min<int64_t>(n_threads, n);
    std::atomic<int64_t> next{0};
    std::mutex mu;
    int64_t failed_at = -1;
    std::exception_ptr failure;
    auto work = [&]() {
        for (int64_t i = next++; i < n; i = next++) {
            try {
                out[(size_t)i] = f(i);
            } catch (...) {
                std::lock_guard<std::mutex> lock(mu);
                if (failed_at < 0 || i < failed_at) failed_at = i, failure = std::current_exception();
            }
        }
    };
    if (n_threads == 1) {
        work();
    } else {
        std::vector<std::thread> threads;
        threads.reserve((size_t)n_threads);
        for (int t = 0; t < n_threads; ++t) threads.emplace_back(work);
        for (auto & t : threads) t.join();
    }
    if (failure) std::rethrow_exception(failure);
    return out;
}

}  // namespace rs
