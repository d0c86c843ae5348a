// One streaming pass over a sequence's stored rows (metrics.h, summarise_sequence_raw): expert importance
// q (Eq. 1), Σ_t H(p_t) (§4.4), token routing consistency (§4.4) and activation counts a_i (§5.2) of every
// MoE layer, straight from a shard's f16 (or f32) probs and I16 top-k ids.
//
// Why it is fast and still exact: the rows of all layers of a token are contiguous ([T, n_moe, E]), so the
// pass reads the shard once, front to back; an f16 value has only 2^16 bit patterns, so its f32 value and
// its exact double p·log p come from two tables built once (the same double products summarise_sequence
// computes with std::log); top-k sets become E-bit masks, so a Jaccard similarity is two popcounts per
// 64 experts instead of a sorted merge, and its ratio is looked up in a table of the divisions it can be.
// Every floating-point sum but one runs in the order of
// summarise_sequence (tokens in order, experts in order), so q, consistency and counts are bit-identical to
// it; H(p_t) is summed in sixteen interleaved partial sums (a fixed order, ~1e-16 relative of the
// sequential sum): one chain of E dependent additions, or four, would bound the pass by the add latency.
// On x86-64 CPUs with AVX2 and F16C (checked at run time) a row of f16 p is widened eight at a time
// (_mm256_cvtph_ps, exact) and its p·log p gathered from the table: the same values in the same order, so
// the result does not depend on the CPU.
#include <bit>
#include <cmath>
#include <string>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

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

// The Jaccard similarities two sets of at most m experts can have: (double)inter / (double)uni at
// [uni · (m + 1) + inter] for inter ≤ uni ≤ m, each the very division token_consistency performs, looked up
// instead of divided (the division's latency bounded consistency_of_masks). Null for m beyond a small table.
struct JaccardRatios {
    const double * at = nullptr;
    size_t side = 0;  // m + 1
};
JaccardRatios jaccard_ratios(size_t m) {
    constexpr size_t kMaxSet = 64;  // unions of up to 64 experts (top-k ≤ 32): a 65 × 65 table, 34 KiB
    thread_local std::vector<double> table;
    if (m > kMaxSet) return {};
    const size_t side = m + 1;
    if (table.size() != side * side) {
        table.assign(side * side, 0.0);
        for (size_t u = 1; u < side; ++u)
            for (size_t i = 0; i <= u; ++i) table[u * side + i] = (double)i / (double)u;
    }
    return {table.data(), side};
}

// Token routing consistency of one layer from the top-k masks (token_consistency's draws). Compiled also
// for CPUs with the popcnt instruction and chosen at load time (the counts, hence the result, are the same).
__attribute__((target_clones("popcnt", "default"))) double consistency_of_masks(const uint64_t * masks,
                                                                                size_t stride, size_t W,
                                                                                int64_t n_tok, uint64_t seed,
                                                                                int n_pairs,
                                                                                JaccardRatios ratios) {
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
        sum += uni == 0    ? 1.0
               : ratios.at ? ratios.at[(size_t)uni * ratios.side + (size_t)inter]
                           : (double)inter / (double)uni;
    }
    return sum / (double)n_pairs;
}

// One row of f16 p (E values): qs[e] += p_e (in expert order) and h[e mod 16] −= p_e·log p_e (h: sixteen
// partial sums, experts e ≡ u mod 16 in expert order). The portable version; row_f16_avx2 computes the
// same values in the same order.
void row_f16_scalar(const uint16_t * r, size_t E, double * qs, double * h, const F16Tables & tab) {
    for (size_t e = 0; e < E; ++e) qs[e] += (double)tab.value[r[e]];
    for (size_t e = 0; e < E; ++e) h[e % 16] -= tab.plogp[r[e]];
}

#if defined(__x86_64__)
__attribute__((target("avx2,f16c"))) void row_f16_avx2(const uint16_t * r, size_t E, double * qs, double * h,
                                                       const F16Tables & tab) {
    __m256d h0 = _mm256_loadu_pd(h), h1 = _mm256_loadu_pd(h + 4), h2 = _mm256_loadu_pd(h + 8),
            h3 = _mm256_loadu_pd(h + 12);
    const double * pl = tab.plogp.data();
    // the masked form with a zero source: GCC 12 warns that the plain form's undefined source is used
    const __m256d zero = _mm256_setzero_pd(), all = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));
#define RS_GATHER(idx) _mm256_mask_i32gather_pd(zero, pl, (idx), all, 8)
    size_t e = 0;
    for (; e + 16 <= E; e += 16) {
        const __m128i b0 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(r + e));
        const __m128i b1 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(r + e + 8));
        const __m256 f0 = _mm256_cvtph_ps(b0), f1 = _mm256_cvtph_ps(b1);  // exact: f16 ⊂ f32
        _mm256_storeu_pd(qs + e,
                         _mm256_add_pd(_mm256_loadu_pd(qs + e), _mm256_cvtps_pd(_mm256_castps256_ps128(f0))));
        _mm256_storeu_pd(qs + e + 4, _mm256_add_pd(_mm256_loadu_pd(qs + e + 4),
                                                   _mm256_cvtps_pd(_mm256_extractf128_ps(f0, 1))));
        _mm256_storeu_pd(qs + e + 8, _mm256_add_pd(_mm256_loadu_pd(qs + e + 8),
                                                   _mm256_cvtps_pd(_mm256_castps256_ps128(f1))));
        _mm256_storeu_pd(qs + e + 12, _mm256_add_pd(_mm256_loadu_pd(qs + e + 12),
                                                    _mm256_cvtps_pd(_mm256_extractf128_ps(f1, 1))));
        const __m256i i0 = _mm256_cvtepu16_epi32(b0), i1 = _mm256_cvtepu16_epi32(b1);
        h0 = _mm256_sub_pd(h0, RS_GATHER(_mm256_castsi256_si128(i0)));
        h1 = _mm256_sub_pd(h1, RS_GATHER(_mm256_extracti128_si256(i0, 1)));
        h2 = _mm256_sub_pd(h2, RS_GATHER(_mm256_castsi256_si128(i1)));
        h3 = _mm256_sub_pd(h3, RS_GATHER(_mm256_extracti128_si256(i1, 1)));
    }
    _mm256_storeu_pd(h, h0), _mm256_storeu_pd(h + 4, h1), _mm256_storeu_pd(h + 8, h2),
        _mm256_storeu_pd(h + 12, h3);
#undef RS_GATHER
    for (; e < E; ++e) qs[e] += (double)tab.value[r[e]], h[e % 16] -= tab.plogp[r[e]];
}

using RowF16 = void (*)(const uint16_t *, size_t, double *, double *, const F16Tables &);
RowF16 pick_row_f16() {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") ? row_f16_avx2 : row_f16_scalar;
}
#else
using RowF16 = void (*)(const uint16_t *, size_t, double *, double *, const F16Tables &);
RowF16 pick_row_f16() {
    return row_f16_scalar;
}
#endif

const RowF16 row_f16 = pick_row_f16();

// (h0 + h1) + … in a fixed tree: the sixteen partial sums of H(p_t)
double sum16(const double * h) {
    double s8[8];
    for (int u = 0; u < 8; ++u) s8[u] = h[u] + h[u + 8];
    return ((s8[0] + s8[4]) + (s8[1] + s8[5])) + ((s8[2] + s8[6]) + (s8[3] + s8[7]));
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
    const bool has_full = probs.f16 || probs.f32;
    const bool has_sel = probs.topk_f16 || probs.topk_f32;  // a --store topk trace: p of the selected
    const bool gate = opt.pooling == Pooling::gate;
    const bool has_q = gate ? has_full || has_sel : has_full;  // q (and entropies) can be computed
    RS_ASSERT(opt.consistency_pairs > 0);
    const F16Tables & tab = tables();
    const size_t L = (size_t)n_moe, E = (size_t)n_expert, K = (size_t)top_k;
    const size_t W = (E + 63) / 64;  // mask words per top-k set
    std::vector<SequenceLayerStats> out(L);
    // per-thread scratch reused from sequence to sequence: fresh ~100 KiB blocks per sequence would be
    // mmap'ed and page-faulted every time (glibc serves large blocks from the kernel)
    thread_local std::vector<double> qsum_buf;
    thread_local std::vector<int64_t> cnt_buf;
    thread_local std::vector<uint64_t> mask_buf;
    qsum_buf.assign(has_q ? L * E : 0, 0.0);
    cnt_buf.assign(L * E, 0);
    mask_buf.assign((size_t)n_tok * L * W, 0);
    std::vector<double> & qsum = qsum_buf;
    std::vector<int64_t> & cnt = cnt_buf;
    std::vector<uint64_t> & masks = mask_buf;
    std::vector<double> hsum(L, 0.0);
    std::vector<int> sel(K);       // positions in the row of its distinct selected experts
    std::vector<double> p_sel(K);  // their p (gate pooling)
    for (int64_t t = 0; t < n_tok; ++t) {
        const size_t row0 = (size_t)(tok_begin + t) * L;  // first (token, layer) row of the token
        for (size_t l = 0; l < L; ++l) {
            const int16_t * ids = topk + (row0 + l) * K;
            uint64_t * m = &masks[((size_t)t * L + l) * W];
            int64_t * c = &cnt[l * E];
            size_t n_sel = 0;
            for (size_t j = 0; j < K; ++j) {
                const int id = ids[j];
                if (id < 0 || id >= n_expert) bad_id(id, n_expert);
                const uint64_t bit = 1ull << (id & 63);
                if (m[id >> 6] & bit) continue;  // a duplicated id in one row counts once
                m[id >> 6] |= bit;
                ++c[id];
                sel[n_sel++] = (int)j;  // position in the row (the p of a store-topk row is by position)
            }
            if (!has_q) continue;
            double * qs = &qsum[l * E];
            if (!gate) {
                double h16[16] = {};
                if (probs.f16) {
                    row_f16(probs.f16 + (row0 + l) * E, E, qs, h16, tab);
                } else {
                    const float * r = probs.f32 + (row0 + l) * E;
                    for (size_t e = 0; e < E; ++e) qs[e] += (double)r[e];
                    for (size_t e = 0; e < E; ++e) {
                        const double x = (double)r[e];
                        h16[e % 16] -= x > 0.0 ? x * std::log(x) : 0.0;
                    }
                }
                hsum[l] += sum16(h16);
                continue;
            }
            // gate pooling: g_e = p_e / S over the selected set, S = Σ_sel p (get_routing_weights.py,
            // calculate_total_actual_weight_per_sequence: topk_discrete / (sum + 1e-20); the 1e-20 only
            // matters when S = 0, where both give g = 0). H(g) = log S − (1/S) Σ_sel p log p: one log per
            // row instead of k.
            double S = 0.0, plp = 0.0;
            double * ps = p_sel.data();
            for (size_t i = 0; i < n_sel; ++i) {
                const size_t j = (size_t)sel[i];
                const int id = ids[j];
                double x = 0.0, xl = 0.0;
                if (has_full) {
                    if (probs.f16) {
                        const uint16_t b = probs.f16[(row0 + l) * E + (size_t)id];
                        x = (double)tab.value[b], xl = tab.plogp[b];
                    } else {
                        x = (double)probs.f32[(row0 + l) * E + (size_t)id];
                        xl = x > 0.0 ? x * std::log(x) : 0.0;
                    }
                } else if (probs.topk_f16) {
                    const uint16_t b = probs.topk_f16[(row0 + l) * K + j];
                    x = (double)tab.value[b], xl = tab.plogp[b];
                } else {
                    x = (double)probs.topk_f32[(row0 + l) * K + j];
                    xl = x > 0.0 ? x * std::log(x) : 0.0;
                }
                ps[i] = x, S += x, plp += xl;
            }
            if (!(S > 0.0)) continue;  // no weight on the selected experts: g = 0, H(g) = 0
            const double inv = 1.0 / S;
            for (size_t i = 0; i < n_sel; ++i) qs[ids[sel[i]]] += ps[i] * inv;
            hsum[l] += std::log(S) - plp * inv;
        }
    }
    const JaccardRatios ratios = jaccard_ratios(2 * K);  // a union of two top-k sets has ≤ 2K experts
    for (size_t l = 0; l < L; ++l) {
        SequenceLayerStats & s = out[l];
        s.n_tok = n_tok;
        s.act_count.assign(cnt.begin() + (ptrdiff_t)(l * E), cnt.begin() + (ptrdiff_t)((l + 1) * E));
        if (n_tok > 0 && has_q) {  // Eq. 1: q_i = (1/L_i) Σ_t p_{i,t} (or Σ_t g_t)
            s.importance.assign(qsum.begin() + (ptrdiff_t)(l * E), qsum.begin() + (ptrdiff_t)((l + 1) * E));
            const double inv_len = 1.0 / (double)n_tok;
            for (double & v : s.importance) v *= inv_len;
            s.pooled_entropy = entropy(std::span<const double>(s.importance));
        }
        s.entropy_sum = hsum[l];
        if (n_tok < 2) continue;
        // token_consistency's draws (token_routing.h), Jaccard of the masks
        s.consistency = consistency_of_masks(&masks[l * W], L * W, W, n_tok,
                                             derive_seed(opt.seed, (uint64_t)seq_index, (uint64_t)l),
                                             opt.consistency_pairs, ratios);
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
