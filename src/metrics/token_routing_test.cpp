// token_routing.h: routing entropy, Jaccard, token routing consistency (exact cases, a statistical case
// against its population value, undefined one-token sequences, determinism) and activation frequencies.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "routescope/common.h"
#include "routescope/stats.h"
#include "routescope/token_routing.h"

namespace {

constexpr double kLn2 = std::numbers::ln2;

rs::TopkRows rows(const std::vector<int16_t> & ids, int64_t n, int k) {
    return rs::TopkRows::dense(ids, n, k);
}

TEST(RoutingEntropy, SumAndMean) {
    // H({.5,.5,0,0}) = ln 2, H({1,0,0,0}) = 0, H(uniform 4) = ln 4 = 2 ln 2 → sum 3 ln 2, mean ln 2
    const std::vector<float> p{0.5f, 0.5f, 0, 0, 1, 0, 0, 0, 0.25f, 0.25f, 0.25f, 0.25f};
    const auto pr = rs::ProbRows::dense(p, 3, 4);
    EXPECT_NEAR(rs::token_entropy_sum(pr), 3 * kLn2, 1e-12);
    rs::EntropyAccumulator acc;
    EXPECT_FALSE(acc.mean().has_value());
    acc.add(pr);
    EXPECT_NEAR(*acc.mean(), kLn2, 1e-12);
    rs::EntropyAccumulator other;
    other.add(0.0, 1);  // one token with H = 0 → (3 ln 2 + 0) / 4
    acc.merge(other);
    EXPECT_NEAR(*acc.mean(), 0.75 * kLn2, 1e-12);
}

TEST(Jaccard, SetsWithDuplicates) {
    using V = std::vector<int16_t>;
    EXPECT_DOUBLE_EQ(*rs::jaccard(V{1, 2}, V{2, 3}), 1.0 / 3.0);  // {2} / {1,2,3}
    EXPECT_DOUBLE_EQ(*rs::jaccard(V{1, 1, 2}, V{2, 1}), 1.0);     // duplicates count once
    EXPECT_DOUBLE_EQ(*rs::jaccard(V{4}, V{}), 0.0);
    EXPECT_FALSE(rs::jaccard(V{}, V{}).has_value());
    EXPECT_DOUBLE_EQ(*rs::jaccard(V{0, 1, 2, 3}, V{3, 2, 5, 6}), 2.0 / 6.0);
}

TEST(Consistency, UndefinedBelowTwoTokens) {
    const std::vector<int16_t> one{3, 5};
    EXPECT_FALSE(rs::token_consistency(rows(one, 1, 2), 0, 0, 0).has_value());
    EXPECT_FALSE(rs::token_consistency(rows({}, 0, 2), 0, 0, 0).has_value());
    rs::ConsistencyAccumulator acc;
    acc.add(rs::token_consistency(rows(one, 1, 2), 0, 0, 0));
    EXPECT_EQ(acc.n_undefined, 1);
    EXPECT_EQ(acc.n_defined, 0);
    EXPECT_FALSE(acc.mean().has_value());
}

TEST(Consistency, ExactCases) {
    // two tokens: the only pair of distinct positions is (0,1): J({0,1},{1,2}) = 1/3 whatever the draws
    const std::vector<int16_t> two{0, 1, 2, 1};
    EXPECT_NEAR(*rs::token_consistency(rows(two, 2, 2), 123, 4, 5), 1.0 / 3.0, 1e-13);  // 500 summed thirds
    // identical top-k sets (order differs) on every token → 1
    const std::vector<int16_t> same{3, 7, 7, 3, 3, 7, 7, 3, 3, 7};
    EXPECT_DOUBLE_EQ(*rs::token_consistency(rows(same, 5, 2), 1, 0, 0), 1.0);
    // disjoint sets on every token → 0
    const std::vector<int16_t> disjoint{0, 1, 2, 3, 4, 5};
    EXPECT_EQ(*rs::token_consistency(rows(disjoint, 3, 2), 1, 0, 0), 0.0);
}

TEST(Consistency, ConvergesToPopulationMean) {
    // sets A = {0,1}, B = {0,2}, C = {3,4}: J(A,B) = 1/3, J(A,C) = J(B,C) = 0; pairs are uniform over the
    // 3 unordered pairs → expectation (1/3)/3 = 1/9. With 200 000 draws the sd of the mean is
    // √((1/27 − 1/81)/200000) ≈ 3.5e-4; allow ~6 sd.
    const std::vector<int16_t> ids{0, 1, 0, 2, 3, 4};
    const auto c = rs::token_consistency(rows(ids, 3, 2), 2024, 0, 0, 200000);
    EXPECT_NEAR(*c, 1.0 / 9.0, 2e-3);
}

TEST(Consistency, DeterministicPerSeedSequenceAndLayer) {
    rs::SplitMix64 rng(5);
    std::vector<int16_t> ids;
    for (int t = 0; t < 60; ++t)
        for (int k = 0; k < 4; ++k) ids.push_back((int16_t)rs::uniform_below(rng, 16));
    const auto r = rows(ids, 60, 4);
    const double a = *rs::token_consistency(r, 7, 10, 3);
    EXPECT_EQ(a, *rs::token_consistency(r, 7, 10, 3));  // bit-identical
    EXPECT_NE(a, *rs::token_consistency(r, 8, 10, 3));  // seed
    EXPECT_NE(a, *rs::token_consistency(r, 7, 11, 3));  // sequence index
    EXPECT_NE(a, *rs::token_consistency(r, 7, 10, 4));  // layer
    EXPECT_GE(a, 0.0);
    EXPECT_LE(a, 1.0);
}

TEST(Consistency, StridedLayerSlice) {
    // shard [T=2, n_moe=2, K=2]: layer 0 rows {0,1},{0,1} (J = 1); layer 1 rows {2,3},{3,4} (J = 1/3)
    const std::vector<int16_t> shard{0, 1, 2, 3, 0, 1, 3, 4};
    EXPECT_DOUBLE_EQ(*rs::token_consistency(rs::TopkRows::layer_slice(shard, 0, 2, 2, 0, 2), 0, 0, 0), 1.0);
    EXPECT_NEAR(*rs::token_consistency(rs::TopkRows::layer_slice(shard, 0, 2, 2, 1, 2), 0, 0, 1), 1.0 / 3.0,
                1e-13);
}

TEST(ActivationFrequency, CountsOncePerToken) {
    // rows {0,1}, {1,2}, {1,1}: a = {1, 3, 1, 0} (the duplicate 1 counts once) → a/L = {1/3, 1, 1/3, 0}
    const std::vector<int16_t> ids{0, 1, 1, 2, 1, 1};
    std::vector<int64_t> a(4);
    rs::activation_counts(rows(ids, 3, 2), 4, a);
    EXPECT_EQ(a, (std::vector<int64_t>{1, 3, 1, 0}));
    std::vector<double> f(4);
    ASSERT_TRUE(rs::activation_frequency(rows(ids, 3, 2), 4, f));
    EXPECT_DOUBLE_EQ(f[0], 1.0 / 3.0);
    EXPECT_DOUBLE_EQ(f[1], 1.0);
    EXPECT_DOUBLE_EQ(f[2], 1.0 / 3.0);
    EXPECT_EQ(f[3], 0.0);
    EXPECT_FALSE(rs::activation_frequency(rows({}, 0, 2), 4, f));
    const std::vector<int16_t> bad{0, 4};
    EXPECT_THROW(rs::activation_counts(rows(bad, 1, 2), 4, a), rs::Error);
}

TEST(ActivationFrequency, Accumulators) {
    // sequence 1 as above → {1/3, 1, 1/3, 0}; sequence 2: one token {2,3} → {0, 0, 1, 1}
    // sequence-averaged: {1/6, 1/2, 2/3, 1/2}; token-pooled: counts {1,3,2,1} / 4 tokens
    const std::vector<int16_t> s1{0, 1, 1, 2, 1, 1}, s2{2, 3};
    rs::ActivationAccumulator acc(4);
    EXPECT_TRUE(acc.mean().empty());
    acc.add(rows(s1, 3, 2));
    acc.add(rows(s2, 1, 2));
    acc.add(rows({}, 0, 2));  // empty: skipped
    EXPECT_EQ(acc.n_seq, 2);
    const auto m = acc.mean();
    EXPECT_DOUBLE_EQ(m[0], 1.0 / 6.0);
    EXPECT_DOUBLE_EQ(m[1], 0.5);
    EXPECT_DOUBLE_EQ(m[2], 2.0 / 3.0);
    EXPECT_DOUBLE_EQ(m[3], 0.5);

    rs::TokenActivationCounter tok(4);
    tok.add(rows(s1, 3, 2));
    rs::TokenActivationCounter tok2(4);
    tok2.add(rows(s2, 1, 2));
    tok.merge(tok2);
    EXPECT_EQ(tok.n_tok, 4);
    EXPECT_EQ(tok.frequency(), (std::vector<double>{0.25, 0.75, 0.5, 0.25}));
    EXPECT_TRUE(rs::TokenActivationCounter(4).frequency().empty());
}

}  // namespace
