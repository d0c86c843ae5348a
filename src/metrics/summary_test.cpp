// metrics.h: per-sequence summaries, layer accumulators and the deterministic parallel map — results must
// be bit-identical for any thread count, and partial accumulators must combine to the single-pass values.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <stdexcept>
#include <vector>

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

}  // namespace
