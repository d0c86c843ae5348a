// Per-sequence routing statistics and their streaming accumulation: routing entropy (Bandarkar et al. 2025,
// §4.4), token routing consistency (§4.4: "we randomly sample 500 pairs of tokens per sequence and take the
// Jaccard similarity of the two sets of activated experts"), activation frequency a_i/L_i (§5.2, the terms
// of Eq. 3) — token_routing.h — and the per-sequence summaries / layer accumulators of metrics.h.
//
// Limits: consistency sorts each row's top-k ids once per sequence (O(L·K log K)) and then compares sorted
// lists, so K may be anything up to E; expert ids outside [0, E) raise rs::Error in the frequency counts.
// A summary keeps q in double (E values per layer); callers that retain q for every sequence of a large
// corpus may narrow it to float (the divergence functions accept both).
#include "routescope/token_routing.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "routescope/common.h"
#include "routescope/divergence.h"
#include "routescope/metrics.h"
#include "routescope/stats.h"

namespace rs {

// ===================================================================================================
// Token-level statistics (token_routing.h)

// ---------------------------------------------------------------------------------------------------
// Routing entropy

double token_entropy_sum(const ProbRows & p) {
    RS_ASSERT(p.valid());
    double sum = 0.0;
    for (int64_t t = 0; t < p.n_rows; ++t) sum += entropy(p.row(t));  // H(p_t), 0·log 0 = 0
    return sum;
}

std::optional<double> EntropyAccumulator::mean() const {
    if (n_tok <= 0) return std::nullopt;
    return sum / (double)n_tok;
}

// ---------------------------------------------------------------------------------------------------
// Token routing consistency

namespace {

// |A ∩ B| / |A ∪ B| of two sorted, duplicate-free lists.
double jaccard_sorted(std::span<const int16_t> a, std::span<const int16_t> b) {
    size_t i = 0, j = 0, inter = 0;
    while (i < a.size() && j < b.size()) {
        if (a[i] < b[j])
            ++i;
        else if (b[j] < a[i])
            ++j;
        else
            ++inter, ++i, ++j;
    }
    const size_t uni = a.size() + b.size() - inter;
    return uni == 0 ? 1.0 : (double)inter / (double)uni;
}

// Sorted unique copy of ids into dst (capacity ≥ ids.size()); returns the number kept.
size_t sorted_unique(std::span<const int16_t> ids, int16_t * dst) {
    std::copy(ids.begin(), ids.end(), dst);
    std::sort(dst, dst + ids.size());
    return (size_t)(std::unique(dst, dst + ids.size()) - dst);
}

}  // namespace

std::optional<double> jaccard(std::span<const int16_t> a, std::span<const int16_t> b) {
    if (a.empty() && b.empty()) return std::nullopt;
    std::vector<int16_t> sa(a.size()), sb(b.size());
    sa.resize(sorted_unique(a, sa.data()));
    sb.resize(sorted_unique(b, sb.data()));
    return jaccard_sorted(sa, sb);
}

std::optional<double> token_consistency(const TopkRows & topk, uint64_t seed, int64_t seq_index, int layer,
                                        int n_pairs) {
    RS_ASSERT(topk.valid() && topk.width > 0 && n_pairs > 0);
    const int64_t n = topk.n_rows;
    if (n < 2) return std::nullopt;
    const size_t k = (size_t)topk.width;
    // each row's ids sorted and deduplicated once: set t = sets[t·K, t·K + len[t])
    std::vector<int16_t> sets((size_t)n * k);
    std::vector<uint32_t> len((size_t)n);
    for (int64_t t = 0; t < n; ++t)
        len[(size_t)t] = (uint32_t)sorted_unique(topk.row(t), &sets[(size_t)t * k]);
    auto set_of = [&](uint64_t t) { return std::span<const int16_t>(&sets[t * k], len[t]); };

    SplitMix64 rng(derive_seed(seed, (uint64_t)seq_index, (uint64_t)layer));
    double sum = 0.0;
    for (int r = 0; r < n_pairs; ++r) {
        // a uniformly random ordered pair of distinct positions
        const uint64_t i = uniform_below(rng, (uint64_t)n);
        uint64_t j = uniform_below(rng, (uint64_t)n - 1);
        if (j >= i) ++j;
        sum += jaccard_sorted(set_of(i), set_of(j));
    }
    return sum / (double)n_pairs;
}

std::optional<double> ConsistencyAccumulator::mean() const {
    if (n_defined <= 0) return std::nullopt;
    return sum / (double)n_defined;
}

// ---------------------------------------------------------------------------------------------------
// Activation frequency

void activation_counts(const TopkRows & topk, int n_expert, std::span<int64_t> out) {
    RS_ASSERT(topk.valid() && n_expert > 0 && out.size() == (size_t)n_expert);
    std::fill(out.begin(), out.end(), 0);
    // last token that counted expert e, so a duplicated id in one row counts once
    std::vector<int64_t> last((size_t)n_expert, -1);
    for (int64_t t = 0; t < topk.n_rows; ++t) {
        for (const int16_t id : topk.row(t)) {
            if (id < 0 || id >= n_expert)
                throw Error("activation_counts: expert id " + std::to_string(id) + " outside [0, " +
                            std::to_string(n_expert) + ")");
            if (last[(size_t)id] == t) continue;
            last[(size_t)id] = t;
            ++out[(size_t)id];
        }
    }
}

bool activation_frequency(const TopkRows & topk, int n_expert, std::span<double> out) {
    RS_ASSERT(out.size() == (size_t)n_expert);
    if (topk.n_rows == 0) return false;
    std::vector<int64_t> counts((size_t)n_expert);
    activation_counts(topk, n_expert, counts);
    // a_i / L_i: fraction of the sequence's tokens with expert e in their top-k
    for (size_t e = 0; e < counts.size(); ++e) out[e] = (double)counts[e] / (double)topk.n_rows;
    return true;
}

void ActivationAccumulator::add(std::span<const double> freq) {
    RS_ASSERT(freq.size() == (size_t)n_expert);
    for (size_t e = 0; e < freq.size(); ++e) sum_freq[e] += freq[e];
    ++n_seq;
}

void ActivationAccumulator::add(const TopkRows & topk) {
    std::vector<double> freq((size_t)n_expert);
    if (activation_frequency(topk, n_expert, freq)) add(freq);
}

void ActivationAccumulator::merge(const ActivationAccumulator & o) {
    RS_ASSERT(o.n_expert == n_expert);
    for (size_t e = 0; e < sum_freq.size(); ++e) sum_freq[e] += o.sum_freq[e];
    n_seq += o.n_seq;
}

std::vector<double> ActivationAccumulator::mean() const {
    if (n_seq <= 0) return {};
    // (1/N) Σ_i a_i/L_i, one side of Eq. 3
    std::vector<double> m(sum_freq);
    for (double & v : m) v /= (double)n_seq;
    return m;
}

void TokenActivationCounter::add(std::span<const int64_t> counts, int64_t n) {
    RS_ASSERT(counts.size() == (size_t)n_expert && n >= 0);
    for (size_t e = 0; e < counts.size(); ++e) count[e] += counts[e];
    n_tok += n;
}

void TokenActivationCounter::add(const TopkRows & topk) {
    std::vector<int64_t> c((size_t)n_expert);
    activation_counts(topk, n_expert, c);
    add(c, topk.n_rows);
}

std::vector<double> TokenActivationCounter::frequency() const {
    if (n_tok <= 0) return {};
    std::vector<double> f((size_t)n_expert);
    for (size_t e = 0; e < f.size(); ++e) f[e] = (double)count[e] / (double)n_tok;
    return f;
}

// ===================================================================================================
// Sequence summaries and layer accumulators (metrics.h)

SequenceLayerStats summarise_sequence_layer(const ProbRows & p, const TopkRows & topk, int64_t seq_index,
                                            int layer, const SummaryOptions & opt) {
    RS_ASSERT(p.valid() && topk.valid() && p.n_rows == topk.n_rows);
    SequenceLayerStats s;
    s.n_tok = p.n_rows;
    s.importance = expert_importance(p);  // Eq. 1
    if (!s.importance.empty()) s.pooled_entropy = entropy(std::span<const double>(s.importance));
    s.entropy_sum = token_entropy_sum(p);
    s.consistency = token_consistency(topk, opt.seed, seq_index, layer, opt.consistency_pairs);
    s.act_count.assign((size_t)p.width, 0);
    activation_counts(topk, p.width, s.act_count);
    return s;
}

std::vector<SequenceLayerStats> summarise_sequence(std::span<const float> probs,
                                                   std::span<const int16_t> topk, int64_t tok_begin,
                                                   int64_t n_tok, int n_moe, int n_expert, int top_k,
                                                   int64_t seq_index, const SummaryOptions & opt) {
    RS_ASSERT(n_moe > 0 && n_expert > 0 && top_k > 0);
    std::vector<SequenceLayerStats> out((size_t)n_moe);
    for (int il = 0; il < n_moe; ++il) {
        const ProbRows p = ProbRows::layer_slice(probs, tok_begin, n_tok, n_moe, il, n_expert);
        const TopkRows k = TopkRows::layer_slice(topk, tok_begin, n_tok, n_moe, il, top_k);
        out[(size_t)il] = summarise_sequence_layer(p, k, seq_index, il, opt);
    }
    return out;
}

LayerAccumulator::LayerAccumulator(int e)
    : n_expert(e), activation(e), tokens(e), importance_sum((size_t)std::max(e, 0), 0.0) {}

void LayerAccumulator::add(const SequenceLayerStats & s) {
    ++n_seq;
    consistency.add(s.consistency);
    if (s.n_tok == 0) {
        ++n_empty;
        return;
    }
    // no importance: a summary of top-k ids only (--store topk trace, RawProbs): no entropy, no q
    const bool has_p = !s.importance.empty();
    RS_ASSERT((!has_p || s.importance.size() == (size_t)n_expert) && s.act_count.size() == (size_t)n_expert);
    if (has_p) entropy.add(s.entropy_sum, s.n_tok);
    if (s.pooled_entropy) pooled_entropy.add(*s.pooled_entropy, 1);
    tokens.add(s.act_count, s.n_tok);
    // a_i / L_i (§5.2)
    std::vector<double> freq((size_t)n_expert);
    for (size_t e = 0; e < freq.size(); ++e) freq[e] = (double)s.act_count[e] / (double)s.n_tok;
    activation.add(freq);
    if (has_p)
        for (size_t e = 0; e < importance_sum.size(); ++e) importance_sum[e] += s.importance[e];
}

void LayerAccumulator::merge(const LayerAccumulator & o) {
    RS_ASSERT(o.n_expert == n_expert);
    n_seq += o.n_seq;
    n_empty += o.n_empty;
    entropy.merge(o.entropy);
    pooled_entropy.merge(o.pooled_entropy);
    consistency.merge(o.consistency);
    activation.merge(o.activation);
    tokens.merge(o.tokens);
    for (size_t e = 0; e < importance_sum.size(); ++e) importance_sum[e] += o.importance_sum[e];
}

std::vector<double> LayerAccumulator::mean_importance() const {
    const int64_t n = n_seq - n_empty;
    if (n <= 0) return {};
    std::vector<double> m(importance_sum);
    for (double & v : m) v /= (double)n;
    return m;
}

}  // namespace rs
