// One streaming pass over a sequence's stored rows (metrics.h, summarise_sequence_raw): expert importance
// q (Eq. 1), Σ_t H(p_t) (§4.4), token routing consistency (§4.4) and activation counts a_i (§5.2) of every
// MoE layer, straight from a shard's f16 (or f32) probs and I16 top-k ids.
//
// Why it is fast and still exact: the rows of all layers of a token are contiguous ([T, n_moe, E]), so the
// pass reads the shard once, front to back; an f16 value has only 2^16 bit patterns, so its f32 value and
// its exact double p·log p come from two tables built once (the same double products summarise_sequence
// computes with std::log); top-k sets become E-bit masks, so a Jaccard similarity is two popcounts per
// 64 experts instead of a sorted merge. Every floating-point sum but one runs in the order of
// summarise_sequence (tokens in order, experts in order), so q, consistency and counts are bit-identical to
// it; H(p_t) is summed in four interleaved partial sums (fixed order, ~1e-16 relative of the sequential sum).
#include <bit>
#include <cmath>
#include <string>

#include "routescope/common.h"
#include "routescope/f16.h"
#include "routescope/metrics.h"
#include "routescope/stats.h"

namespace rs {

namespace {

struct F16Tables {
    std::vector<float> value;   // [2^16] f32 value of each bit pattern
    std::vector<double> plogp;  // [2^16] x·log x for x > 0 (x = the value widened), else 0
    F16Tables() : value(65536), plogp(65536) {
        for (uint32_t b = 0; b < 65536; ++b) {
            value[b] = f16_to_f32((uint16_t)b);
            const double x = (double)value[b];
            plogp[b] = x > 0.0 ? x * std::log(x) : 0.0;
        }
    }
};

const F16Tables & tables() {
    static const F16Tables t;
    return t;
}

[[noreturn]] void bad_id(int id, int n_expert) {
    throw Error("activation_counts: expert id " + std::to_string(id) + " outside [0, " +
                std::to_string(n_expert) + ")");
}

// Token routing consistency of one layer from the top-k masks (token_consistency's draws). Compiled also
// for CPUs with the popcnt instruction and chosen at load time (the counts, hence the result, are the same).
__attribute__((target_clones("popcnt", "default"))) double consistency_of_masks(const uint64_t * masks,
                                                                                size_t stride, size_t W,
                                                                                int64_t n_tok, uint64_t seed,
                                                                                int n_pairs) {
    SplitMix64 rng(seed);
    const UniformBelow below_n((uint64_t)n_tok), below_n1((uint64_t)n_tok - 1);
    double sum = 0.0;
    for (int r = 0; r < n_pairs; ++r) {
        const uint64_t i = below_n(rng);
        uint64_t j = below_n1(rng);
        if (j >= i) ++j;
        const uint64_t * a = masks + i * stride;
        const uint64_t * b = masks + j * stride;
        int inter = 0, uni = 0;
        for (size_t w = 0; w < W; ++w) inter += std::popcount(a[w] & b[w]), uni += std::popcount(a[w] | b[w]);
        sum += uni == 0 ? 1.0 : (double)inter / (double)uni;
    }
    return sum / (double)n_pairs;
}

}  // namespace

float f16_bits_to_f32(uint16_t h) {
    return tables().value[h];
}

std::vector<SequenceLayerStats> summarise_sequence_raw(RawProbs probs, const int16_t * topk,
                                                       int64_t tok_begin, int64_t n_tok, int n_moe,
                                                       int n_expert, int top_k, int64_t seq_index,
                                                       const SummaryOptions & opt) {
    RS_ASSERT(n_moe > 0 && n_expert > 0 && top_k > 0 && n_tok >= 0 && topk);
    const bool has_p = probs.f16 || probs.f32;  // a --store topk trace: ids only
    RS_ASSERT(opt.consistency_pairs > 0);
    const F16Tables & tab = tables();
    const size_t L = (size_t)n_moe, E = (size_t)n_expert, K = (size_t)top_k;
    const size_t W = (E + 63) / 64;  // mask words per top-k set
    std::vector<SequenceLayerStats> out(L);
    std::vector<double> qsum(L * E, 0.0), hsum(L, 0.0);
    std::vector<int64_t> cnt(L * E, 0);
    std::vector<uint64_t> masks((size_t)n_tok * L * W, 0);
    for (int64_t t = 0; t < n_tok; ++t) {
        const size_t row0 = (size_t)(tok_begin + t) * L;  // first (token, layer) row of the token
        for (size_t l = 0; l < L; ++l) {
            double * qs = &qsum[l * E];
            // H(p_t) = −Σ p log p (0·log 0 = 0) in four interleaved partial sums (experts e ≡ 0..3 mod 4,
            // added as (h0 + h1) + (h2 + h3)): a single chain of E dependent additions would bound the pass
            // by the addition latency. A fixed order, so still bit-stable; within ~1e-16 relative of the
            // sequential sum.
            double h4[4] = {0.0, 0.0, 0.0, 0.0};
            size_t e4 = E / 4 * 4;
            if (!has_p) {
            } else if (probs.f16) {
                const uint16_t * r = probs.f16 + (row0 + l) * E;
                for (size_t e = 0; e < E; ++e) qs[e] += (double)tab.value[r[e]];
                for (size_t e = 0; e < e4; e += 4)
                    for (int u = 0; u < 4; ++u) h4[u] -= tab.plogp[r[e + (size_t)u]];
                for (size_t e = e4; e < E; ++e) h4[e - e4] -= tab.plogp[r[e]];
            } else {
                const float * r = probs.f32 + (row0 + l) * E;
                for (size_t e = 0; e < E; ++e) qs[e] += (double)r[e];
                auto plogp = [](float v) {
                    const double x = (double)v;
                    return x > 0.0 ? x * std::log(x) : 0.0;
                };
                for (size_t e = 0; e < e4; e += 4)
                    for (int u = 0; u < 4; ++u) h4[u] -= plogp(r[e + (size_t)u]);
                for (size_t e = e4; e < E; ++e) h4[e - e4] -= plogp(r[e]);
            }
            const double h = (h4[0] + h4[1]) + (h4[2] + h4[3]);
            hsum[l] += h;
            const int16_t * ids = topk + (row0 + l) * K;
            uint64_t * m = &masks[((size_t)t * L + l) * W];
            int64_t * c = &cnt[l * E];
            for (size_t j = 0; j < K; ++j) {
                const int id = ids[j];
                if (id < 0 || id >= n_expert) bad_id(id, n_expert);
                const uint64_t bit = 1ull << (id & 63);
                if (m[id >> 6] & bit) continue;  // a duplicated id in one row counts once
                m[id >> 6] |= bit;
                ++c[id];
            }
        }
    }
    for (size_t l = 0; l < L; ++l) {
        SequenceLayerStats & s = out[l];
        s.n_tok = n_tok;
        s.act_count.assign(cnt.begin() + (ptrdiff_t)(l * E), cnt.begin() + (ptrdiff_t)((l + 1) * E));
        if (n_tok > 0 && has_p) {  // Eq. 1: q_i = (1/L_i) Σ_t p_{i,t}
            s.importance.assign(qsum.begin() + (ptrdiff_t)(l * E), qsum.begin() + (ptrdiff_t)((l + 1) * E));
            const double inv_len = 1.0 / (double)n_tok;
            for (double & v : s.importance) v *= inv_len;
        }
        s.entropy_sum = hsum[l];
        if (n_tok < 2) continue;
        // token_consistency's draws (token_routing.h), Jaccard of the masks
        s.consistency = consistency_of_masks(&masks[l * W], L * W, W, n_tok,
                                             derive_seed(opt.seed, (uint64_t)seq_index, (uint64_t)l),
                                             opt.consistency_pairs);
    }
    return out;
}

void activation_counts_raw(const int16_t * topk, int64_t tok_begin, int64_t n_tok, int n_moe, int top_k,
                           int n_expert, std::span<const int> slots, std::span<int64_t> out) {
    RS_ASSERT(out.size() == slots.size() * (size_t)n_expert && n_expert > 0 && top_k > 0);
    std::fill(out.begin(), out.end(), 0);
    std::vector<int64_t> last(slots.size() * (size_t)n_expert, -1);  // last token that counted e
    for (int64_t t = 0; t < n_tok; ++t) {
        const int16_t * row = topk + (size_t)(tok_begin + t) * (size_t)n_moe * (size_t)top_k;
        for (size_t i = 0; i < slots.size(); ++i) {
            const int16_t * ids = row + (size_t)slots[i] * (size_t)top_k;
            int64_t * c = &out[i * (size_t)n_expert];
            int64_t * lt = &last[i * (size_t)n_expert];
            for (int j = 0; j < top_k; ++j) {
                const int id = ids[j];
                if (id < 0 || id >= n_expert) bad_id(id, n_expert);
                if (lt[id] == t) continue;
                lt[id] = t;
                ++c[id];
            }
        }
    }
}

}  // namespace rs
