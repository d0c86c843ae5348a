// eval_significance.h: exact binomial tails, McNemar (exact and chi-square with continuity correction),
// the sign test, and the paired / stratified bootstrap of the accuracy delta, all against values computed
// by hand on small tables (derivations in the comments), plus bootstrap determinism.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "routescope/eval_significance.h"

namespace {

constexpr double kTol = 1e-12;

TEST(BinomialHalfCdf, SmallTablesByHand) {
    // n = 10: C(10, 0..2) = 1, 10, 45 ⇒ P(X ≤ 2) = 56 / 1024 = 0.0546875.
    EXPECT_NEAR(rs::binomial_half_cdf(2, 10), 0.0546875, kTol);
    // n = 8: P(X ≤ 1) = (1 + 8) / 256 = 0.03515625.
    EXPECT_NEAR(rs::binomial_half_cdf(1, 8), 0.03515625, kTol);
    // n = 5: P(X ≤ 2) = (1 + 5 + 10) / 32 = 0.5 (symmetry).
    EXPECT_NEAR(rs::binomial_half_cdf(2, 5), 0.5, kTol);
    EXPECT_EQ(rs::binomial_half_cdf(-1, 5), 0.0);
    EXPECT_EQ(rs::binomial_half_cdf(5, 5), 1.0);
    EXPECT_EQ(rs::binomial_half_cdf(0, 0), 1.0);
    // n = 1: P(X ≤ 0) = ½.
    EXPECT_NEAR(rs::binomial_half_cdf(0, 1), 0.5, kTol);
}

TEST(BinomialHalfCdf, LargeNAgainstSymmetry) {
    // n = 249 (odd): P(X ≤ 124) = ½ exactly by symmetry.
    EXPECT_NEAR(rs::binomial_half_cdf(124, 249), 0.5, 1e-10);
    // n = 2: P(X ≤ 0) = ¼.
    EXPECT_NEAR(rs::binomial_half_cdf(0, 2), 0.25, kTol);
}

TEST(McNemar, ExactByHand) {
    // b = 8, c = 2: p = 2·P(X ≤ 2 | 10, ½) = 2 · 56/1024 = 0.109375.
    EXPECT_NEAR(rs::mcnemar_exact_p(8, 2), 0.109375, kTol);
    EXPECT_NEAR(rs::mcnemar_exact_p(2, 8), 0.109375, kTol);  // symmetric in b, c
    // b = 10, c = 0: p = 2 / 1024 = 0.001953125.
    EXPECT_NEAR(rs::mcnemar_exact_p(10, 0), 0.001953125, kTol);
    // b = 3, c = 3: 2·P(X ≤ 3 | 6) = 2 · 42/64 > 1 ⇒ clamped to 1.
    EXPECT_EQ(rs::mcnemar_exact_p(3, 3), 1.0);
    // b = c = 0: no discordant pairs ⇒ 1.
    EXPECT_EQ(rs::mcnemar_exact_p(0, 0), 1.0);
    // b = 1, c = 0: 2·½ = 1.
    EXPECT_EQ(rs::mcnemar_exact_p(1, 0), 1.0);
}

TEST(McNemar, ChiSquareWithContinuity) {
    // b = 8, c = 2: χ² = (6 − 1)² / 10 = 2.5; p = erfc(√1.25) = 0.113846298007...
    EXPECT_NEAR(rs::mcnemar_chi2_p(8, 2), std::erfc(std::sqrt(1.25)), kTol);
    EXPECT_NEAR(rs::mcnemar_chi2_p(8, 2), 0.1138463, 1e-7);
    // b = 20, c = 5: χ² = 14² / 25 = 7.84; p = erfc(√3.92) = 0.0051103...
    EXPECT_NEAR(rs::mcnemar_chi2_p(20, 5), std::erfc(std::sqrt(3.92)), kTol);
    EXPECT_NEAR(rs::mcnemar_chi2_p(20, 5), 0.0051103, 1e-6);
    // |b − c| ≤ 1 ⇒ χ² = 0 ⇒ p = 1.
    EXPECT_EQ(rs::mcnemar_chi2_p(4, 5), 1.0);
    EXPECT_EQ(rs::mcnemar_chi2_p(0, 0), 1.0);
}

TEST(PairedCounts, TwoByTwoTable) {
    //            item: 0  1  2  3  4  5
    const std::vector<uint8_t> base = {1, 1, 0, 0, 1, 0};
    const std::vector<uint8_t> steer = {1, 0, 1, 0, 1, 1};
    const rs::PairedCounts t = rs::paired_counts(base, steer);
    EXPECT_EQ(t.n, 6);
    EXPECT_EQ(t.both, 2);          // items 0, 4
    EXPECT_EQ(t.base_only, 1);     // item 1
    EXPECT_EQ(t.steered_only, 2);  // items 2, 5
    EXPECT_EQ(t.neither, 1);       // item 3
}

TEST(SignTest, SevenOfEightPositive) {
    // 7 up, 1 down: p = 2·P(X ≤ 1 | 8, ½) = 2 · 9/256 = 0.0703125.
    const std::vector<double> d = {0.016, 0.076, 0.024, -0.008, 0.056, 0.096, 0.024, 0.004};
    const rs::SignTest t = rs::sign_test(d);
    EXPECT_EQ(t.n_pos, 7);
    EXPECT_EQ(t.n_neg, 1);
    EXPECT_EQ(t.n_zero, 0);
    EXPECT_NEAR(t.p, 0.0703125, kTol);
}

TEST(SignTest, ZerosAreDropped) {
    // Paper Table 2, GPT-OSS MGSM Δ (points) for the 10 non-English languages:
    // +1.6 +7.6 +2.4 0.0 -0.8 +5.6 +9.6 +2.4 +0.4 -2.8 ⇒ 7 up, 2 down, 1 zero;
    // p = 2·P(X ≤ 2 | 9, ½) = 2 · (1 + 9 + 36)/512 = 0.1796875.
    const std::vector<double> d = {1.6, 7.6, 2.4, 0.0, -0.8, 5.6, 9.6, 2.4, 0.4, -2.8};
    const rs::SignTest t = rs::sign_test(d);
    EXPECT_EQ(t.n_pos, 7);
    EXPECT_EQ(t.n_neg, 2);
    EXPECT_EQ(t.n_zero, 1);
    EXPECT_NEAR(t.p, 0.1796875, kTol);
    // All zero or empty ⇒ p = 1.
    EXPECT_EQ(rs::sign_test(std::vector<double>{0.0, 0.0}).p, 1.0);
    EXPECT_EQ(rs::sign_test(std::vector<double>{}).p, 1.0);
    // A tolerance turns tiny deltas into zeros.
    EXPECT_EQ(rs::sign_test(std::vector<double>{1e-15, 0.5}, 1e-9).n_zero, 1);
}

TEST(PairedBootstrap, DeterministicAndBracketsTheDelta) {
    // 20 items: steered fixes 6 that base got wrong and breaks 1 ⇒ Δ = 5/20 = 0.25.
    std::vector<uint8_t> base(20, 0), steer(20, 0);
    for (int i = 0; i < 10; ++i) base[(size_t)i] = steer[(size_t)i] = 1;
    for (int i = 10; i < 16; ++i) steer[(size_t)i] = 1;
    base[16] = 1;
    rs::BootstrapOptions opt;
    opt.n_resamples = 2000;
    opt.seed = 42;
    const auto a = rs::paired_bootstrap_delta_ci(base, steer, opt);
    const auto b = rs::paired_bootstrap_delta_ci(base, steer, opt);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->lo, b->lo);  // same seed ⇒ bit-identical
    EXPECT_EQ(a->hi, b->hi);
    EXPECT_LT(a->lo, 0.25);
    EXPECT_GT(a->hi, 0.25);
    // Normal approximation: d has six +1, one −1, thirteen 0 ⇒ E[d²] = 7/20, Var = 0.35 − 0.25² = 0.2875,
    // SE = √(0.2875/20) = 0.1199 ⇒ 95% CI ≈ 0.25 ± 0.235 = [0.015, 0.485]; the percentile CI is close.
    EXPECT_NEAR(a->lo, 0.015, 0.06);
    EXPECT_NEAR(a->hi, 0.485, 0.06);
    // A different seed gives a (slightly) different interval but the same Δ bracket.
    opt.seed = 43;
    const auto c = rs::paired_bootstrap_delta_ci(base, steer, opt);
    ASSERT_TRUE(c);
    EXPECT_LT(c->lo, 0.25);
    EXPECT_GT(c->hi, 0.25);
}

TEST(PairedBootstrap, DegenerateInputs) {
    rs::BootstrapOptions opt;
    EXPECT_FALSE(rs::paired_bootstrap_delta_ci(std::vector<uint8_t>{}, std::vector<uint8_t>{}, opt));
    // Identical runs ⇒ every d_i = 0 ⇒ CI [0, 0].
    const std::vector<uint8_t> v = {1, 0, 1, 1, 0};
    const auto ci = rs::paired_bootstrap_delta_ci(v, v, opt);
    ASSERT_TRUE(ci);
    EXPECT_EQ(ci->lo, 0.0);
    EXPECT_EQ(ci->hi, 0.0);
    // Steered always right, base always wrong ⇒ every d_i = 1 ⇒ CI [1, 1].
    const std::vector<uint8_t> zeros(5, 0), ones(5, 1);
    const auto all = rs::paired_bootstrap_delta_ci(zeros, ones, opt);
    ASSERT_TRUE(all);
    EXPECT_EQ(all->lo, 1.0);
    EXPECT_EQ(all->hi, 1.0);
}

TEST(StratifiedBootstrap, ConstantGroupsGiveTheExactAverage) {
    // Group 0: all d = +1; group 1: all d = 0 ⇒ every resample averages (1 + 0)/2 = 0.5.
    const std::vector<std::vector<uint8_t>> base = {{0, 0, 0}, {1, 1}};
    const std::vector<std::vector<uint8_t>> steer = {{1, 1, 1}, {1, 1}};
    rs::BootstrapOptions opt;
    const auto ci = rs::stratified_bootstrap_delta_ci(base, steer, opt);
    ASSERT_TRUE(ci);
    EXPECT_EQ(ci->lo, 0.5);
    EXPECT_EQ(ci->hi, 0.5);
    // No groups or an empty group ⇒ nullopt.
    EXPECT_FALSE(rs::stratified_bootstrap_delta_ci(std::span<const std::vector<uint8_t>>{},
                                                   std::span<const std::vector<uint8_t>>{}, opt));
    const std::vector<std::vector<uint8_t>> with_empty = {{1}, {}};
    EXPECT_FALSE(rs::stratified_bootstrap_delta_ci(with_empty, with_empty, opt));
}

TEST(StratifiedBootstrap, DeterministicAndBracketsTheMacroDelta) {
    // Group 0: 4 → 6 of 8 right, Δ = +0.25; group 1: 2 → 1 of 4, Δ = −0.25 ⇒ macro Δ = 0.
    const std::vector<std::vector<uint8_t>> base = {{0, 0, 1, 1, 0, 1, 0, 1}, {1, 0, 1, 0}};
    const std::vector<std::vector<uint8_t>> steer = {{1, 1, 1, 1, 0, 1, 0, 1}, {0, 0, 1, 0}};
    rs::BootstrapOptions opt;
    opt.seed = 7;
    const auto a = rs::stratified_bootstrap_delta_ci(base, steer, opt);
    const auto b = rs::stratified_bootstrap_delta_ci(base, steer, opt);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->lo, b->lo);
    EXPECT_EQ(a->hi, b->hi);
    EXPECT_LE(a->lo, 0.0);
    EXPECT_GE(a->hi, 0.0);
    // Bounds: group 0 means lie in [0, 1], group 1 in [−1, 0] ⇒ average in [−0.5, 0.5].
    EXPECT_GE(a->lo, -0.5);
    EXPECT_LE(a->hi, 0.5);
}

}  // namespace
