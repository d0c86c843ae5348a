// metrics.h: per-sequence summaries, layer accumulators and the deterministic parallel map — results must
// be bit-identical for any thread count, and partial accumulators must combine to the single-pass values.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>
#include <vector>

#include "routescope/f16.h"
#include "routescope/metrics.h"

namespace {

// A random shard: n_seq sequences of 0..12 tokens, n_moe layers, E experts, K selected per token.
struct FakeShard {
    int n_moe = 3, e = 8, k = 2;
    std::vector<int64_t> offset{0};
    std::vector<float> probs;
    std::vector<int16_t> topk;
};

FakeShard make_shard(int n_seq, uint64_t seed) {
    FakeShard s;
    rs::SplitMix64 rng(seed);
    for (int i = 0; i < n_seq; ++i) {
        const int64_t len = (int64_t)rs::uniform_below(rng, 13);
        for (int64_t t = 0; t < len; ++t)
            for (int l = 0; l < s.n_moe; ++l) {
                std::vector<float> p((size_t)s.e);
                float sum = 0.0f;
                for (auto & v : p) sum += v = (float)(1 + rs::uniform_below(rng, 50));
                for (auto & v : p) v /= sum;
                s.probs.insert(s.probs.end(), p.begin(), p.end());
                const int16_t a = (int16_t)rs::uniform_below(rng, (uint64_t)s.e);
                const int16_t b = (int16_t)((a + 1 + (int)rs::uniform_below(rng, (uint64_t)s.e - 1)) % s.e);
                s.topk.push_back(a);
                s.topk.push_back(b);
            }
        s.offset.push_back(s.offset.back() + len);
    }
    return s;
}

std::vector<rs::LayerAccumulator> accumulate(const FakeShard & s, int n_threads) {
    const int64_t n_seq = (int64_t)s.offset.size() - 1;
    const auto per_seq =
        rs::parallel_map<std::vector<rs::SequenceLayerStats>>(n_seq, n_threads, [&](int64_t i) {
            return rs::summarise_sequence(s.probs, s.topk, s.offset[(size_t)i],
                                          s.offset[(size_t)i + 1] - s.offset[(size_t)i], s.n_moe, s.e, s.k, i,
                                          {.seed = 42});
        });
    std::vector<rs::LayerAccumulator> acc(3, rs::LayerAccumulator(s.e));
    for (const auto & seq : per_seq)  // sequence order
        for (int l = 0; l < s.n_moe; ++l) acc[(size_t)l].add(seq[(size_t)l]);
    return acc;
}

TEST(Summary, OneSequenceByHand) {
    // E = 2, K = 1, tokens p = {1,0}, {.5,.5}: q = {.75,.25}; ΣH = 0 + ln 2; top-1 {0}, {1}:
    // a = {1,1}, consistency J({0},{1}) = 0 on the only pair
    const std::vector<float> p{1, 0, 0.5f, 0.5f};
    const std::vector<int16_t> k{0, 1};
    const auto s =
        rs::summarise_sequence_layer(rs::ProbRows::dense(p, 2, 2), rs::TopkRows::dense(k, 2, 1), 0, 0);
    EXPECT_EQ(s.n_tok, 2);
    EXPECT_EQ(s.importance, (std::vector<double>{0.75, 0.25}));
    EXPECT_NEAR(s.entropy_sum, std::numbers::ln2, 1e-12);
    EXPECT_EQ(*s.consistency, 0.0);
    EXPECT_EQ(s.act_count, (std::vector<int64_t>{1, 1}));

    rs::LayerAccumulator acc(2);
    acc.add(s);
    acc.add(rs::summarise_sequence_layer(rs::ProbRows::dense({}, 0, 2), rs::TopkRows::dense({}, 0, 1), 1, 0));
    EXPECT_EQ(acc.n_seq, 2);
    EXPECT_EQ(acc.n_empty, 1);
    EXPECT_EQ(acc.consistency.n_undefined, 1);
    EXPECT_EQ(acc.mean_importance(), (std::vector<double>{0.75, 0.25}));
    EXPECT_NEAR(*acc.entropy.mean(), 0.5 * std::numbers::ln2, 1e-12);
    EXPECT_EQ(acc.activation.mean(), (std::vector<double>{0.5, 0.5}));
    EXPECT_EQ(acc.tokens.frequency(), (std::vector<double>{0.5, 0.5}));
}

TEST(Summary, IdenticalForAnyThreadCount) {
    const FakeShard s = make_shard(57, 9);
    const auto ref = accumulate(s, 1);
    for (const int threads : {2, 3, 8}) {
        const auto got = accumulate(s, threads);
        for (int l = 0; l < s.n_moe; ++l) {
            const auto & a = ref[(size_t)l];
            const auto & b = got[(size_t)l];
            EXPECT_EQ(a.entropy.sum, b.entropy.sum);
            EXPECT_EQ(a.consistency.sum, b.consistency.sum);
            EXPECT_EQ(a.consistency.n_undefined, b.consistency.n_undefined);
            EXPECT_EQ(a.activation.sum_freq, b.activation.sum_freq);
            EXPECT_EQ(a.tokens.count, b.tokens.count);
            EXPECT_EQ(a.importance_sum, b.importance_sum);
        }
    }
    // short sequences (0 or 1 token) are counted as undefined consistency
    int64_t short_seqs = 0;
    for (size_t i = 0; i + 1 < s.offset.size(); ++i) short_seqs += s.offset[i + 1] - s.offset[i] < 2;
    EXPECT_EQ(ref[0].consistency.n_undefined, short_seqs);
}

TEST(Summary, MergeOfPartsMatchesSinglePass) {
    const FakeShard s = make_shard(40, 10);
    const auto whole = accumulate(s, 1);
    // same data split into two shards at sequence 17, accumulated separately, merged in shard order
    const int64_t n_seq = (int64_t)s.offset.size() - 1, cut = 17;
    std::vector<rs::LayerAccumulator> first(3, rs::LayerAccumulator(s.e)),
        second(3, rs::LayerAccumulator(s.e));
    for (int64_t i = 0; i < n_seq; ++i) {
        const auto seq = rs::summarise_sequence(s.probs, s.topk, s.offset[(size_t)i],
                                                s.offset[(size_t)i + 1] - s.offset[(size_t)i], s.n_moe, s.e,
                                                s.k, i, {.seed = 42});
        for (int l = 0; l < s.n_moe; ++l) (i < cut ? first : second)[(size_t)l].add(seq[(size_t)l]);
    }
    for (int l = 0; l < s.n_moe; ++l) {
        first[(size_t)l].merge(second[(size_t)l]);
        const auto & a = whole[(size_t)l];
        const auto & b = first[(size_t)l];
        EXPECT_EQ(a.n_seq, b.n_seq);
        EXPECT_EQ(a.tokens.count, b.tokens.count);  // integer sums: exact
        EXPECT_EQ(a.consistency.n_defined, b.consistency.n_defined);
        EXPECT_NEAR(a.entropy.sum, b.entropy.sum, 1e-9);  // different grouping: equal up to rounding
        EXPECT_NEAR(a.consistency.sum, b.consistency.sum, 1e-9);
        for (int e = 0; e < s.e; ++e) {
            EXPECT_NEAR(a.importance_sum[(size_t)e], b.importance_sum[(size_t)e], 1e-9);
            EXPECT_NEAR(a.activation.sum_freq[(size_t)e], b.activation.sum_freq[(size_t)e], 1e-9);
        }
        // corpus-mean importance is a distribution
        double sum = 0.0;
        for (double v : a.mean_importance()) sum += v;
        EXPECT_NEAR(sum, 1.0, 1e-6);
    }
}

TEST(ParallelMap, OrderAndLowestFailure) {
    const auto sq = rs::parallel_map<int64_t>(100, 4, [](int64_t i) { return i * i; });
    for (int64_t i = 0; i < 100; ++i) EXPECT_EQ(sq[(size_t)i], i * i);
    EXPECT_TRUE(rs::parallel_map<int>(0, 4, [](int64_t) { return 1; }).empty());
    // indices 30 and 70 throw; whatever the scheduling, the error of index 30 is the one rethrown
    for (const int threads : {1, 3, 8}) {
        try {
            rs::parallel_map<int>(100, threads, [](int64_t i) -> int {
                if (i == 30 || i == 70) throw std::runtime_error("bad " + std::to_string(i));
                return 0;
            });
            FAIL() << "no exception";
        } catch (const std::runtime_error & e) {
            EXPECT_STREQ(e.what(), "bad 30");
        }
    }
}

// analyze --pooling gate (metrics.h, Pooling; the authors' get_routing_weights.py,
// calculate_total_actual_weight_per_sequence): g_t = p_t masked to the token's top-k ids and renormalised
// over them; q = mean of g_t; entropy_sum = Σ_t H(g_t); pooled_entropy = H(q). Values by hand, dyadic so
// that f16 and f32 store them exactly; from the full p and from the selected experts' p (--store topk).
struct Rows {
    int n_moe = 1, e = 4, k = 2;
    std::vector<float> p;      // [T, 1, E]
    std::vector<int16_t> ids;  // [T, 1, K]
};

std::vector<rs::SequenceLayerStats> gate_of(const Rows & r, const std::string & how,
                                            rs::Pooling pooling = rs::Pooling::gate) {
    const int64_t n_tok = (int64_t)r.ids.size() / r.k;
    std::vector<uint16_t> h16(r.p.size());
    for (size_t i = 0; i < r.p.size(); ++i) h16[i] = rs::f32_to_f16(r.p[i]);
    std::vector<float> sel32(r.ids.size());  // p of the selected experts by position (store topk)
    for (size_t i = 0; i < r.ids.size(); ++i)
        sel32[i] = r.p[(i / (size_t)r.k) * (size_t)r.e + (size_t)r.ids[i]];
    std::vector<uint16_t> sel16(sel32.size());
    for (size_t i = 0; i < sel32.size(); ++i) sel16[i] = rs::f32_to_f16(sel32[i]);
    rs::RawProbs raw;
    if (how == "f32") raw.f32 = r.p.data();
    if (how == "f16") raw.f16 = h16.data();
    if (how == "topk_f32") raw.topk_f32 = sel32.data();
    if (how == "topk_f16") raw.topk_f16 = sel16.data();
    const rs::SummaryOptions so{.seed = 1, .consistency_pairs = 20, .pooling = pooling};
    return rs::summarise_sequence_raw(raw, r.ids.data(), 0, n_tok, r.n_moe, r.e, r.k, 0, so);
}

double h_of(std::initializer_list<double> v) {
    double h = 0;
    for (double x : v)
        if (x > 0) h -= x * std::log(x);
    return h;
}

TEST(GatePooling, ByHandFromFullAndSelectedP) {
    Rows r;
    r.p = {0.5f, 0.25f, 0.125f, 0.125f, /* t1 */ 0.125f, 0.125f, 0.25f, 0.5f};
    r.ids = {0, 1, /* t1 */ 3, 2};
    for (const char * how : {"f32", "f16", "topk_f32", "topk_f16"}) {
        const auto s = gate_of(r, how);
        ASSERT_EQ(s.size(), 1u);
        // t0: S = 0.75, g = (2/3, 1/3, 0, 0); t1: g = (0, 0, 1/3, 2/3); q = their mean
        const std::vector<double> q = {1.0 / 3, 1.0 / 6, 1.0 / 6, 1.0 / 3};
        for (int e = 0; e < 4; ++e) EXPECT_NEAR(s[0].importance[(size_t)e], q[(size_t)e], 1e-15) << how;
        EXPECT_NEAR(s[0].entropy_sum, 2 * h_of({2.0 / 3, 1.0 / 3}), 1e-15) << how;
        ASSERT_TRUE(s[0].pooled_entropy) << how;
        EXPECT_NEAR(*s[0].pooled_entropy, h_of({1.0 / 3, 1.0 / 6, 1.0 / 6, 1.0 / 3}), 1e-15) << how;
        EXPECT_EQ(s[0].act_count, (std::vector<int64_t>{1, 1, 1, 1})) << how;
    }
    // softmax pooling of the same rows: q = mean p; no q from the selected p alone
    const auto soft = gate_of(r, "f32", rs::Pooling::softmax);
    EXPECT_EQ(soft[0].importance, (std::vector<double>{0.3125, 0.1875, 0.1875, 0.3125}));
    EXPECT_TRUE(gate_of(r, "topk_f32", rs::Pooling::softmax)[0].importance.empty());
}

// top-k = E: every expert is selected and S = Σ p = 1, so gate pooling equals softmax pooling.
TEST(GatePooling, TopkEqualToEIsSoftmax) {
    Rows r;
    r.k = 4;
    r.p = {0.5f, 0.25f, 0.125f, 0.125f, 0.0625f, 0.4375f, 0.25f, 0.25f};
    r.ids = {0, 1, 2, 3, 3, 2, 1, 0};
    const auto g = gate_of(r, "f16"), s = gate_of(r, "f16", rs::Pooling::softmax);
    for (int e = 0; e < 4; ++e) EXPECT_EQ(g[0].importance[(size_t)e], s[0].importance[(size_t)e]);
    EXPECT_NEAR(g[0].entropy_sum, s[0].entropy_sum, 1e-15);
    EXPECT_EQ(*g[0].pooled_entropy, *s[0].pooled_entropy);
}

// A tie: four experts at 0.25 and k = 2. The recorded ids decide (exactly k experts, as vLLM's top-k);
// the authors' mask p ≥ (k-th largest) would take all four here (metrics.h). A single-token sequence:
// q = g_0, H(q) = H(g_0), no consistency. A duplicated id counts once; a selected set with no weight
// (S = 0) gives g = 0, as the authors' topk_discrete / (sum + 1e-20).
TEST(GatePooling, TieSingleTokenDuplicateAndZeroWeight) {
    Rows r;
    r.p = {0.25f, 0.25f, 0.25f, 0.25f};
    r.ids = {2, 0};
    for (const char * how : {"f32", "topk_f16"}) {
        const auto s = gate_of(r, how);
        EXPECT_EQ(s[0].importance, (std::vector<double>{0.5, 0.0, 0.5, 0.0})) << how;
        EXPECT_NEAR(s[0].entropy_sum, std::numbers::ln2, 1e-15) << how;
        EXPECT_NEAR(*s[0].pooled_entropy, std::numbers::ln2, 1e-15) << how;
        EXPECT_FALSE(s[0].consistency) << how;
    }
    r.p = {0.5f, 0.25f, 0.25f, 0.0f, /* t1 */ 0.5f, 0.5f, 0.0f, 0.0f};
    r.ids = {1, 1, /* t1: no weight on the selected */ 2, 3};
    const auto s = gate_of(r, "f32");
    EXPECT_EQ(s[0].importance, (std::vector<double>{0.0, 0.5, 0.0, 0.0}));  // (g0 + 0) / 2
    EXPECT_EQ(s[0].entropy_sum, 0.0);
    EXPECT_EQ(s[0].act_count, (std::vector<int64_t>{0, 1, 1, 1}));
}

}  // namespace
