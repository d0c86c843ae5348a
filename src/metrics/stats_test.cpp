// stats.h: SplitMix64 reference outputs, uniform integers, quantiles, bootstrap determinism, incomplete beta
// and Student t against closed forms and tables, Pearson/Spearman (ties) with p-values.
// Expected numbers are derived in the comments, never by calling the function under test.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "routescope/stats.h"

namespace {

TEST(SplitMix64, MatchesReferenceOutputs) {
    // Reference splitmix64.c (Vigna), seed 1234567: the published first three outputs.
    rs::SplitMix64 a(1234567);
    EXPECT_EQ(a.next(), 6457827717110365317ULL);
    EXPECT_EQ(a.next(), 3203168211198807973ULL);
    EXPECT_EQ(a.next(), 9817491932198370423ULL);
    // Seed 0: first output 0xe220a8397b1dcdaf (same reference code, run in Python with 64-bit masks).
    rs::SplitMix64 b(0);
    EXPECT_EQ(b.next(), 0xe220a8397b1dcdafULL);
}

TEST(SplitMix64, DerivedSeedsDifferAndRepeat) {
    EXPECT_EQ(rs::derive_seed(7, 3, 2), rs::derive_seed(7, 3, 2));
    EXPECT_NE(rs::derive_seed(7, 3, 2), rs::derive_seed(7, 2, 3));
    EXPECT_NE(rs::derive_seed(7, 3, 2), rs::derive_seed(8, 3, 2));
}

TEST(UniformBelow, InRangeAndRoughlyUniform) {
    rs::SplitMix64 rng(42);
    EXPECT_EQ(rs::uniform_below(rng, 1), 0u);
    std::vector<int> hist(6, 0);
    const int n = 60000;
    for (int i = 0; i < n; ++i) {
        const uint64_t v = rs::uniform_below(rng, 6);
        ASSERT_LT(v, 6u);
        ++hist[v];
    }
    // each bin ~ Binomial(60000, 1/6): mean 10000, sd = sqrt(60000·(1/6)·(5/6)) ≈ 91; allow 6 sd
    for (const int h : hist) EXPECT_NEAR(h, 10000, 550);
}

// The division-free draw equals uniform_below draw for draw, and its remainder equals r % n, for small,
// power-of-two, 2^32-adjacent and near-2^64 bounds.
TEST(UniformBelow, DivisionFreeEqualsUniformBelow) {
    rs::SplitMix64 pick(99);
    for (const uint64_t n : {1ull, 2ull, 3ull, 7ull, 37ull, 64ull, 1000ull, 1025ull, (1ull << 32) - 1,
                             1ull << 32, (1ull << 32) + 1, 0x9e3779b97f4a7c15ull, (1ull << 63) + 3, ~0ull}) {
        const rs::UniformBelow below(n);
        rs::SplitMix64 a(n), b(n);
        for (int i = 0; i < 2000; ++i) ASSERT_EQ(below(a), rs::uniform_below(b, n)) << n;
        for (int i = 0; i < 2000; ++i) {
            const uint64_t r = i < 3 ? (uint64_t)(0 - i) : pick.next();  // also 0, 2^64-1, 2^64-2
            ASSERT_EQ(below.mod(r), r % n) << r << " mod " << n;
        }
    }
}

TEST(Quantile, LinearInterpolation) {
    const std::vector<double> v{1.0, 2.0, 3.0, 4.0};
    // pos = q·(n−1): q = 0.25 → 0.75 → 1 + 0.75·(2 − 1) = 1.75
    EXPECT_DOUBLE_EQ(rs::quantile_sorted(v, 0.25), 1.75);
    EXPECT_DOUBLE_EQ(rs::quantile_sorted(v, 0.0), 1.0);
    EXPECT_DOUBLE_EQ(rs::quantile_sorted(v, 1.0), 4.0);
    EXPECT_DOUBLE_EQ(rs::quantile_sorted(v, 0.5), 2.5);
}

// The percentile bootstrap written out plainly (resample r: n draws uniform_below from stream
// derive_seed(seed, r, 0), summed in draw order; means sorted; linear-interpolated quantiles) equals
// bootstrap_mean_ci bit for bit, whatever the number of resamples.
TEST(Bootstrap, EqualsThePlainResamplingBitForBit) {
    std::vector<double> v;
    rs::SplitMix64 gen(5);
    for (int i = 0; i < 37; ++i) v.push_back((double)(gen.next() >> 11) * 0x1p-53 * (i % 3 ? 1.0 : 1e-3));
    for (const int n_resamples : {1, 3, 4, 7, 1000, 1001}) {
        const rs::BootstrapOptions opt{.n_resamples = n_resamples, .level = 0.9, .seed = 17};
        std::vector<double> means;
        for (int r = 0; r < n_resamples; ++r) {
            rs::SplitMix64 rng(rs::derive_seed(opt.seed, (uint64_t)r, 0));
            double sum = 0.0;
            for (size_t k = 0; k < v.size(); ++k) sum += v[(size_t)rs::uniform_below(rng, v.size())];
            means.push_back(sum / (double)v.size());
        }
        std::sort(means.begin(), means.end());
        const auto ci = rs::bootstrap_mean_ci(v, opt);
        ASSERT_TRUE(ci.has_value());
        const double tail = 0.5 * (1.0 - opt.level);
        EXPECT_EQ(ci->lo, rs::quantile_sorted(means, tail)) << n_resamples;
        EXPECT_EQ(ci->hi, rs::quantile_sorted(means, 1.0 - tail)) << n_resamples;
    }
}

TEST(Bootstrap, DeterministicAndSensible) {
    std::vector<double> v;
    rs::SplitMix64 rng(1);
    for (int i = 0; i < 200; ++i) v.push_back((double)rs::uniform_below(rng, 1000) / 1000.0);
    double mean = 0.0;
    for (double x : v) mean += x;
    mean /= (double)v.size();
    rs::BootstrapOptions opt;
    const auto a = rs::bootstrap_mean_ci(v, opt);
    const auto b = rs::bootstrap_mean_ci(v, opt);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->lo, b->lo);  // bit-identical for the same seed
    EXPECT_EQ(a->hi, b->hi);
    EXPECT_LT(a->lo, mean);
    EXPECT_GT(a->hi, mean);
    // uniform on [0, 1): sd ≈ 0.289, standard error ≈ 0.289/√200 ≈ 0.0204; 95% half-width ≈ 0.04
    EXPECT_NEAR(a->hi - a->lo, 2 * 1.96 * 0.0204, 0.02);
    opt.seed = 99;
    const auto c = rs::bootstrap_mean_ci(v, opt);
    EXPECT_TRUE(c->lo != a->lo || c->hi != a->hi);

    const std::vector<double> constant(10, 0.25);
    const auto k = rs::bootstrap_mean_ci(constant, {});
    EXPECT_EQ(k->lo, 0.25);
    EXPECT_EQ(k->hi, 0.25);
    EXPECT_FALSE(rs::bootstrap_mean_ci(std::vector<double>{}, {}).has_value());
    const auto one = rs::bootstrap_mean_ci(std::vector<double>{0.7}, {});
    EXPECT_EQ(one->lo, 0.7);
    EXPECT_EQ(one->hi, 0.7);
}

TEST(IncompleteBeta, ClosedForms) {
    // I_x(1, 1) = x; I_x(a, 1) = x^a; I_x(1, b) = 1 − (1 − x)^b; I_½(a, a) = ½
    EXPECT_NEAR(rs::incomplete_beta(1, 1, 0.37), 0.37, 1e-14);
    EXPECT_NEAR(rs::incomplete_beta(3, 1, 0.5), 0.125, 1e-14);
    EXPECT_NEAR(rs::incomplete_beta(1, 4, 0.2), 1.0 - std::pow(0.8, 4), 1e-14);  // 0.5904
    EXPECT_NEAR(rs::incomplete_beta(7.5, 7.5, 0.5), 0.5, 1e-13);
    // integer a, b: I_x(a,b) = Σ_{j=a}^{a+b−1} C(a+b−1, j) x^j (1−x)^{a+b−1−j}
    // I_0.3(2,3) = 6·.09·.49 + 4·.027·.7 + .0081 = .2646 + .0756 + .0081 = .3483
    EXPECT_NEAR(rs::incomplete_beta(2, 3, 0.3), 0.3483, 1e-13);
    // I_0.6(3,2) = 4·.216·.4 + .1296 = .3456 + .1296 = .4752 (takes the symmetry branch)
    EXPECT_NEAR(rs::incomplete_beta(3, 2, 0.6), 0.4752, 1e-13);
    EXPECT_EQ(rs::incomplete_beta(2, 3, 0.0), 0.0);
    EXPECT_EQ(rs::incomplete_beta(2, 3, 1.0), 1.0);
}

TEST(StudentT, KnownValues) {
    // df = 1 (Cauchy): F(t) = ½ + atan(t)/π → F(1) = 0.75
    EXPECT_NEAR(rs::student_t_cdf(1.0, 1), 0.75, 1e-12);
    // df = 2: F(t) = ½ + t / (2√(2 + t²)) → F(1) = ½ + 1/(2√3) = 0.7886751345948129
    EXPECT_NEAR(rs::student_t_cdf(1.0, 2), 0.5 + 1.0 / (2.0 * std::sqrt(3.0)), 1e-12);
    EXPECT_NEAR(rs::student_t_cdf(-1.0, 2), 0.5 - 1.0 / (2.0 * std::sqrt(3.0)), 1e-12);
    // df = 4: F(t) = ½ + (3/8)·u·(1 − t²/(12 s²)), s = √(1 + t²/4), u = t/s; t = 1.5: s = 1.25, u = 1.2,
    // t²/(12 s²) = 2.25/18.75 = 0.12 → ½ + 0.375·1.2·0.88 = 0.896
    EXPECT_NEAR(rs::student_t_cdf(1.5, 4), 0.896, 1e-12);
    // table: t_{0.975, 10} = 2.228138852 → two-sided p = 0.05
    EXPECT_NEAR(rs::student_t_two_sided_p(2.228138852, 10), 0.05, 1e-9);
    // df = 30, t = −2: 0.0273125224814821 (Simpson integration of the t density, 200 000 intervals)
    EXPECT_NEAR(rs::student_t_cdf(-2.0, 30), 0.0273125224814821, 1e-10);
    EXPECT_EQ(rs::student_t_two_sided_p(0.0, 5), 1.0);
    EXPECT_EQ(rs::student_t_two_sided_p(INFINITY, 5), 0.0);
}

TEST(Correlation, PearsonByHand) {
    // x = 1..5, y = {2,4,5,4,5}: dx = {−2,−1,0,1,2}, dy = {−2,0,1,0,1}; Σdxdy = 6, Σdx² = 10, Σdy² = 6
    // r = 6/√60 = 0.7745966692414834; t = r√(3/(1−0.6)) = 3/√2; df = 3:
    // F(t) = ½ + (1/π)(u/(1+u²) + atan u), u = t/√3 = √1.5 → p = 2(1 − F) = 0.12402706265755459
    const std::vector<double> x{1, 2, 3, 4, 5}, y{2, 4, 5, 4, 5};
    const auto c = rs::pearson(x, y);
    ASSERT_TRUE(c);
    EXPECT_NEAR(c->r, 6.0 / std::sqrt(60.0), 1e-14);
    EXPECT_NEAR(c->p, 0.12402706265755459, 1e-10);
    EXPECT_EQ(c->n, 5);
}

TEST(Correlation, PValueForRHalfNTen) {
    // r = 0.5, n = 10: t = 0.5·√(8/0.75) = 1.632993, df = 8 → p = 0.14111328125 (the classic ≈ 0.1411;
    // exact for even df, here confirmed by Simpson integration of the t density)
    const double t = 0.5 * std::sqrt(8.0 / 0.75);
    EXPECT_NEAR(rs::student_t_two_sided_p(t, 8), 0.14111328125, 1e-10);
}

TEST(Correlation, PerfectAndUndefined) {
    const std::vector<double> x{1, 2, 3, 4}, y{2, 4, 6, 8}, ny{8, 6, 4, 2}, flat{3, 3, 3, 3};
    EXPECT_DOUBLE_EQ(rs::pearson(x, y)->r, 1.0);
    EXPECT_EQ(rs::pearson(x, y)->p, 0.0);
    EXPECT_DOUBLE_EQ(rs::spearman(x, ny)->r, -1.0);
    EXPECT_FALSE(rs::pearson(x, flat).has_value());   // zero variance
    EXPECT_FALSE(rs::spearman(flat, x).has_value());  // constant ranks
    const std::vector<double> two{1, 2};
    EXPECT_FALSE(rs::pearson(two, two).has_value());  // n < 3
    EXPECT_FALSE(rs::pearson(x, two).has_value());    // length mismatch
    const std::vector<double> bad{1, NAN, 3, 4};
    EXPECT_FALSE(rs::pearson(x, bad).has_value());
    // 0.1 + 0.1 + 0.1 is not 3·0.1 in binary: constancy is detected exactly, not by the variance
    const std::vector<double> tenths{0.1, 0.1, 0.1, 0.1};
    EXPECT_FALSE(rs::pearson(x, tenths).has_value());
}

TEST(Correlation, SpearmanWithTies) {
    // x = {1,2,2,3} → ranks {1, 2.5, 2.5, 4}; y = {1,3,2,4} → ranks {1,3,2,4}; both means 2.5
    // dx = {−1.5,0,0,1.5}, dy = {−1.5,.5,−.5,1.5}: Σdxdy = 4.5, Σdx² = 4.5, Σdy² = 5
    // ρ = 4.5/√22.5 = 3/√10 = 0.9486832980505138; t = ρ√(2/(1−0.9)) = 3√2, df = 2:
    // p = 1 − t/√(2 + t²) = 1 − 3√2/√20 = 0.05131670194948612
    const std::vector<double> x{1, 2, 2, 3}, y{1, 3, 2, 4};
    const std::vector<double> rx = rs::average_ranks(x);
    EXPECT_EQ(rx, (std::vector<double>{1, 2.5, 2.5, 4}));
    const auto c = rs::spearman(x, y);
    ASSERT_TRUE(c);
    EXPECT_NEAR(c->r, 3.0 / std::sqrt(10.0), 1e-14);
    EXPECT_NEAR(c->p, 0.05131670194948612, 1e-10);
}

TEST(Correlation, AverageRanksThreeWayTie) {
    // {5, 1, 5, 5, 0}: sorted 0,1,5,5,5 → ranks 1,2 and (3+4+5)/3 = 4 for the fives
    const std::vector<double> x{5, 1, 5, 5, 0};
    EXPECT_EQ(rs::average_ranks(x), (std::vector<double>{4, 2, 4, 4, 1}));
}

}  // namespace
