// divergence.h: expert importance (Eq. 1), entropy, KL, JS (Eq. 6), D_H-JS (Eqs. 7–8) with its undefined
// cases, divergence from a pivot (Eq. 2) with bootstrap CI, unpaired divergence and the language matrix.
// Expected values are worked out in the comments (natural logs: ln 2 = 0.6931471805599453,
// ln 3 = 1.0986122886681098).
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "routescope/divergence.h"

namespace {

constexpr double kLn2 = std::numbers::ln2;

// A random distribution over E experts, some entries exactly zero.
std::vector<double> random_dist(rs::SplitMix64 & rng, int e) {
    std::vector<double> q((size_t)e);
    double s = 0.0;
    for (auto & v : q) {
        const uint64_t r = rs::uniform_below(rng, 100);
        v = r < 20 ? 0.0 : (double)r;
        s += v;
    }
    if (s == 0.0) q[0] = s = 1.0;
    for (auto & v : q) v /= s;
    return q;
}

TEST(ExpertImportance, MeanOfRows) {
    // p1 = {.5,.5,0}, p2 = {.1,.3,.6} → q = ½(p1 + p2) = {.3,.4,.3}
    const std::vector<float> p{0.5f, 0.5f, 0.0f, 0.1f, 0.3f, 0.6f};
    const auto q = rs::expert_importance(rs::ProbRows::dense(p, 2, 3));
    ASSERT_EQ(q.size(), 3u);
    EXPECT_NEAR(q[0], 0.3, 1e-7);
    EXPECT_NEAR(q[1], 0.4, 1e-7);
    EXPECT_NEAR(q[2], 0.3, 1e-7);
    EXPECT_TRUE(rs::expert_importance(rs::ProbRows::dense({}, 0, 3)).empty());
}

TEST(ExpertImportance, StridedLayerOfAShard) {
    // shard [T=2, n_moe=2, E=2]: token t, layer l holds {a, 1−a} with a = 0.1·(1 + t + 2l)
    std::vector<float> probs;
    for (int t = 0; t < 2; ++t)
        for (int l = 0; l < 2; ++l) {
            const float a = 0.1f * (float)(1 + t + 2 * l);
            probs.push_back(a);
            probs.push_back(1.0f - a);
        }
    // layer 1: tokens give a = 0.3 and 0.4 → q = {0.35, 0.65}
    const auto q = rs::expert_importance(rs::ProbRows::layer_slice(probs, 0, 2, 2, 1, 2));
    EXPECT_NEAR(q[0], 0.35, 1e-7);
    EXPECT_NEAR(q[1], 0.65, 1e-7);
}

TEST(Entropy, ZeroTermsAndUniform) {
    EXPECT_DOUBLE_EQ(rs::entropy(std::vector<double>{0.25, 0.25, 0.25, 0.25}), 2 * kLn2);  // ln 4
    EXPECT_EQ(rs::entropy(std::vector<double>{1.0, 0.0, 0.0}), 0.0);                       // 0·ln 0 = 0
    EXPECT_DOUBLE_EQ(rs::entropy(std::vector<double>{0.5, 0.5, 0.0}), kLn2);
    EXPECT_NEAR(rs::entropy(std::vector<float>{0.5f, 0.5f}), kLn2, 1e-12);
}

TEST(KlDivergence, ByHandAndInfinite) {
    // KL({.5,.5} ‖ {.25,.75}) = .5 ln 2 + .5 ln(.5/.75) = .3465736 − .2027326 = 0.14384103622589042
    const auto kl = rs::kl_divergence(std::vector<double>{0.5, 0.5}, std::vector<double>{0.25, 0.75});
    ASSERT_TRUE(kl);
    EXPECT_NEAR(*kl, 0.14384103622589042, 1e-15);
    // a_e > 0 where b_e = 0: infinite, reported as nullopt
    EXPECT_FALSE(rs::kl_divergence(std::vector<double>{0.5, 0.5}, std::vector<double>{1.0, 0.0}));
    // a_e = 0 where b_e = 0 is fine
    EXPECT_EQ(*rs::kl_divergence(std::vector<double>{1.0, 0.0}, std::vector<double>{1.0, 0.0}), 0.0);
}

TEST(JsDivergence, ByHand) {
    // disjoint supports, E = 2: m = {.5,.5}, KL(a‖m) = KL(b‖m) = ln 2 → D_JS = ln 2 (the upper bound)
    EXPECT_DOUBLE_EQ(rs::js_divergence(std::vector<double>{1, 0}, std::vector<double>{0, 1}), kLn2);
    // a = {.5,.5,0}, b = {0,.5,.5}: m = {.25,.5,.25}; KL(a‖m) = .5 ln 2 + .5 ln 1 = .5 ln 2, same for b
    // → D_JS = .5 ln 2 = 0.34657359027997264
    const std::vector<double> a{0.5, 0.5, 0.0}, b{0.0, 0.5, 0.5};
    EXPECT_NEAR(rs::js_divergence(a, b), 0.5 * kLn2, 1e-15);
    // identical distributions: exactly 0
    EXPECT_EQ(rs::js_divergence(a, a), 0.0);
    const std::vector<float> af{0.2f, 0.3f, 0.5f};
    EXPECT_EQ(rs::js_divergence(af, af), 0.0);
}

TEST(JsDivergence, SymmetricBoundedAndEqualsEntropyForm) {
    // Independent formula: D_JS(a‖b) = H(m) − ½(H(a) + H(b)); checked on random vectors with zeros.
    rs::SplitMix64 rng(3);
    for (int it = 0; it < 200; ++it) {
        const int e = 2 + (int)rs::uniform_below(rng, 30);
        const auto a = random_dist(rng, e), b = random_dist(rng, e);
        const double ab = rs::js_divergence(a, b), ba = rs::js_divergence(b, a);
        EXPECT_EQ(ab, ba);
        EXPECT_GE(ab, 0.0);
        EXPECT_LE(ab, kLn2);
        std::vector<double> m((size_t)e);
        double hm = 0.0, ha = 0.0, hb = 0.0;
        for (int i = 0; i < e; ++i) {
            m[(size_t)i] = 0.5 * (a[(size_t)i] + b[(size_t)i]);
            if (m[(size_t)i] > 0) hm -= m[(size_t)i] * std::log(m[(size_t)i]);
            if (a[(size_t)i] > 0) ha -= a[(size_t)i] * std::log(a[(size_t)i]);
            if (b[(size_t)i] > 0) hb -= b[(size_t)i] * std::log(b[(size_t)i]);
        }
        EXPECT_NEAR(ab, hm - 0.5 * (ha + hb), 1e-12);
        // D_H-JS symmetric too
        const auto h1 = rs::hjs_divergence(a, b), h2 = rs::hjs_divergence(b, a);
        ASSERT_EQ(h1.has_value(), h2.has_value());
        if (h1) {
            EXPECT_EQ(*h1, *h2);
            EXPECT_GE(*h1, 0.0);
        }
    }
}

TEST(HjsDivergence, ByHand) {
    // E = 2, disjoint one-hot: D_JS = ln 2, F = ln 2 − ½(0 + 0) = ln 2 → 1
    EXPECT_DOUBLE_EQ(*rs::hjs_divergence(std::vector<double>{1, 0}, std::vector<double>{0, 1}), 1.0);
    // E = 3, a = {.5,.5,0}, b = {0,.5,.5}: D_JS = .5 ln 2, F = ln 3 − ln 2 = 0.4054651081081645
    // → 0.34657359027997264 / 0.4054651081081645 = 0.8547556456757271
    const auto h = rs::hjs_divergence(std::vector<double>{0.5, 0.5, 0}, std::vector<double>{0, 0.5, 0.5});
    ASSERT_TRUE(h);
    EXPECT_NEAR(*h, 0.8547556456757271, 1e-14);
    // identical non-uniform: exactly 0 (defined)
    const std::vector<double> q{0.7, 0.2, 0.1};
    EXPECT_EQ(*rs::hjs_divergence(q, q), 0.0);
}

TEST(HjsDivergence, UndefinedNearUniformNeverNaN) {
    const std::vector<double> u4(4, 0.25);
    EXPECT_FALSE(rs::hjs_divergence(u4, u4).has_value());  // F = ln 4 − ln 4 = 0
    const std::vector<float> u4f(4, 0.25f);
    EXPECT_FALSE(rs::hjs_divergence(u4f, u4f).has_value());
    // tiny perturbation: H ≈ ln 4 − O(1e-16), F far below 1e-6·ln 4
    const std::vector<double> near{0.25 + 1e-9, 0.25 - 1e-9, 0.25, 0.25};
    EXPECT_FALSE(rs::hjs_divergence(near, u4).has_value());
    // E = 1: ln E = 0, always undefined
    EXPECT_FALSE(rs::hjs_divergence(std::vector<double>{1.0}, std::vector<double>{1.0}).has_value());
    // a floor of 0 still refuses F ≤ 0
    EXPECT_FALSE(rs::hjs_divergence(u4, u4, 0.0).has_value());
    // one uniform, one peaked is defined: F = ln 2 − ½ ln 2 for E = 2
    const auto d = rs::hjs_divergence(std::vector<double>{1, 0}, std::vector<double>{0.5, 0.5});
    ASSERT_TRUE(d);
    // D_JS({1,0}‖{.5,.5}): m = {.75,.25}; KL(a‖m) = ln(4/3) = .2876821, KL(u‖m) = .5 ln(2/3) + .5 ln 2
    // = .1438410 → D_JS = .2157616; / (½ ln 2 = .3465736) = 0.6225562489182657
    EXPECT_NEAR(*d, 0.6225562489182657, 1e-13);
}

// --normaliser clamp (the authors' analysis_helpers.py, calculate_entropy_normalized_jsd):
// F = max(log E − ½(H(a)+H(b)), 1e-6). Near uniform (F ≈ 2d² = 2e-8 < 1e-6·log 2) the default is undefined
// and clamp divides by 1e-6; well away from uniform both rules give D_JS / F.
TEST(HjsDivergence, ClampedNormaliserAsTheAuthorsCode) {
    const double d = 1e-4;
    const std::vector<double> a = {0.5 + d, 0.5 - d}, b = {0.5 - d, 0.5 + d};
    const double ha = rs::entropy(std::span<const double>(a)), hb = rs::entropy(std::span<const double>(b));
    EXPECT_FALSE(rs::hjs_divergence_given_entropies(a, b, ha, hb, rs::HjsNormaliser::undefined));
    const auto c = rs::hjs_divergence_given_entropies(a, b, ha, hb, rs::HjsNormaliser::clamp);
    ASSERT_TRUE(c);
    EXPECT_DOUBLE_EQ(*c, rs::js_divergence(a, b) / 1e-6);
    const std::vector<double> x = {0.7, 0.2, 0.1, 0.0}, y = {0.1, 0.1, 0.4, 0.4};
    const double hx = rs::entropy(std::span<const double>(x)), hy = rs::entropy(std::span<const double>(y));
    const double want = rs::js_divergence(x, y) / (std::log(4.0) - 0.5 * (hx + hy));
    EXPECT_DOUBLE_EQ(*rs::hjs_divergence_given_entropies(x, y, hx, hy, rs::HjsNormaliser::clamp), want);
    EXPECT_DOUBLE_EQ(*rs::hjs_divergence_given_entropies(x, y, hx, hy, rs::HjsNormaliser::undefined), want);
    EXPECT_EQ(*rs::hjs_divergence_given_entropies(x, x, hx, hx, rs::HjsNormaliser::clamp), 0.0);
}

// A distribution with itself (analyze's diagonal and the pivot with itself): hjs_divergence_self equals the
// full computation bit for bit (+0.0, or undefined) under both normaliser rules — random q with zeros, a
// near-uniform q (undefined unless clamped), uniform, one-hot, E = 1.
TEST(HjsDivergence, SelfPairEqualsTheFullComputation) {
    rs::SplitMix64 rng(7);
    std::vector<std::vector<double>> qs = {
        {0.25 + 1e-9, 0.25 - 1e-9, 0.25, 0.25}, std::vector<double>(8, 0.125), {1.0, 0.0, 0.0}, {1.0}};
    for (int i = 0; i < 50; ++i) qs.push_back(random_dist(rng, 1 + (int)rs::uniform_below(rng, 64)));
    for (const auto & q : qs) {
        std::vector<double> lq(q.size());
        for (size_t e = 0; e < q.size(); ++e) lq[e] = q[e] > 0.0 ? std::log(q[e]) : 0.0;
        const double h = rs::entropy(std::span<const double>(q));
        for (const auto mode : {rs::HjsNormaliser::undefined, rs::HjsNormaliser::clamp}) {
            const auto full = rs::hjs_divergence_given_logs(q, q, lq, lq, h, h, mode);
            const auto self = rs::hjs_divergence_self(q.size(), h, mode);
            ASSERT_EQ(full.has_value(), self.has_value()) << q.size();
            if (full) {
                EXPECT_EQ(*full, 0.0);
                EXPECT_FALSE(std::signbit(*full));
                EXPECT_EQ(*self, 0.0);
                EXPECT_FALSE(std::signbit(*self));
            }
        }
    }
    EXPECT_FALSE(rs::hjs_divergence_self(4, std::log(4.0), rs::HjsNormaliser::undefined));  // uniform
    EXPECT_EQ(rs::hjs_divergence_self(4, std::log(4.0), rs::HjsNormaliser::clamp), 0.0);
    EXPECT_FALSE(rs::hjs_divergence_self(1, 0.0, rs::HjsNormaliser::clamp));  // E = 1
}

TEST(PairedDivergence, MeanSkipsUndefinedPairs) {
    // E = 2, three pairs: (one-hot, opposite one-hot) → 1; (identical one-hot) → 0; (uniform, uniform) →
    // undefined
    const std::vector<double> pivot{1, 0, 1, 0, 0.5, 0.5};
    const std::vector<double> lang{0, 1, 1, 0, 0.5, 0.5};
    const auto d = rs::paired_divergence(pivot, lang, 2);
    EXPECT_EQ(d.n_pairs, 3);
    EXPECT_EQ(d.n_defined, 2);
    EXPECT_EQ(d.n_undefined, 1);
    EXPECT_DOUBLE_EQ(d.mean, 0.5);  // (1 + 0) / 2
    EXPECT_GE(d.ci.lo, 0.0);
    EXPECT_LE(d.ci.hi, 1.0);
    EXPECT_LE(d.ci.lo, d.mean);
    EXPECT_GE(d.ci.hi, d.mean);

    const auto v = rs::pairwise_hjs(pivot, lang, 2);
    ASSERT_EQ(v.size(), 3u);
    EXPECT_DOUBLE_EQ(*v[0], 1.0);
    EXPECT_EQ(*v[1], 0.0);
    EXPECT_FALSE(v[2].has_value());

    // all undefined: not defined, mean 0, no NaN
    const std::vector<double> u{0.5, 0.5};
    const auto none = rs::paired_divergence(u, u, 2);
    EXPECT_FALSE(none.defined());
    EXPECT_EQ(none.mean, 0.0);
    EXPECT_EQ(none.n_undefined, 1);
}

TEST(PairedDivergence, DeterministicBootstrapAndFloatOverload) {
    rs::SplitMix64 rng(11);
    const int e = 8, n = 120;
    std::vector<double> a, b;
    for (int i = 0; i < n; ++i) {
        const auto x = random_dist(rng, e), y = random_dist(rng, e);
        a.insert(a.end(), x.begin(), x.end());
        b.insert(b.end(), y.begin(), y.end());
    }
    const auto d1 = rs::paired_divergence(a, b, e), d2 = rs::paired_divergence(a, b, e);
    EXPECT_EQ(d1.mean, d2.mean);
    EXPECT_EQ(d1.ci.lo, d2.ci.lo);
    EXPECT_EQ(d1.ci.hi, d2.ci.hi);
    EXPECT_LT(d1.ci.lo, d1.mean);
    EXPECT_GT(d1.ci.hi, d1.mean);
    const std::vector<float> af(a.begin(), a.end()), bf(b.begin(), b.end());
    const auto df = rs::paired_divergence(af, bf, e);
    EXPECT_EQ(df.n_defined, d1.n_defined);
    EXPECT_NEAR(df.mean, d1.mean, 1e-5);
}

TEST(UnpairedDivergence, CorpusMeans) {
    // corpus 1 rows {1,0},{0.5,0.5} → mean {.75,.25}; corpus 2 rows {0,1},{0.5,0.5} → mean {.25,.75}
    const std::vector<double> c1{1, 0, 0.5, 0.5}, c2{0, 1, 0.5, 0.5};
    const auto m1 = rs::mean_importance(c1, 2), m2 = rs::mean_importance(c2, 2);
    EXPECT_EQ(m1, (std::vector<double>{0.75, 0.25}));
    EXPECT_EQ(m2, (std::vector<double>{0.25, 0.75}));
    // m = {.5,.5}: D_JS = KL({.75,.25}‖{.5,.5}) = .75 ln 1.5 + .25 ln .5 = .3040988 − .1732868 = 0.1308121
    // H({.75,.25}) = −.75 ln .75 − .25 ln .25 = .2157616 + .3465736 = 0.5623351; F = ln 2 − 0.5623351
    // = 0.1308121 → D_H-JS = 1 (F equals D_JS here: H(m) = ln 2)
    const auto d = rs::unpaired_divergence(m1, m2);
    ASSERT_TRUE(d);
    EXPECT_NEAR(*d, 1.0, 1e-12);
    EXPECT_TRUE(rs::mean_importance(std::vector<double>{}, 2).empty());
}

TEST(DivergenceMatrix, HandMadeLanguages) {
    // 4 languages × 2 groups × E = 2 (row-major [lang][group][expert])
    //   A: {1,0}, {1,0}     B: {0,1}, {1,0}     C: {.5,.5}, {.5,.5}     D: {.5,.5}, {.5,.5}
    // A–B: groups give 1 and 0 → 0.5. A–C: group 0 only (C's group 1 absent) → 0.6225562489182657
    // (the one-hot vs uniform value of HjsDivergence.UndefinedNearUniformNeverNaN). C–D: uniform vs
    // uniform, undefined in its one shared group.
    const std::vector<double> q{1, 0, 1, 0, 0, 1, 1, 0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
    const std::vector<uint8_t> present{1, 1, 1, 1, 1, 0, 1, 1};
    const auto m = rs::divergence_matrix(q, 4, 2, 2, present);
    ASSERT_EQ(m.n, 4);
    for (int a = 0; a < 4; ++a) {
        EXPECT_EQ(m.at(a, a), 0.0);
        for (int b = 0; b < 4; ++b) EXPECT_EQ(m.at(a, b), m.at(b, a));
    }
    EXPECT_DOUBLE_EQ(m.at(0, 1), 0.5);
    EXPECT_EQ(m.n_defined[0 * 4 + 1], 2);
    EXPECT_NEAR(m.at(0, 2), 0.6225562489182657, 1e-13);
    EXPECT_EQ(m.n_defined[0 * 4 + 2], 1);
    EXPECT_FALSE(m.defined(2, 3));
    EXPECT_EQ(m.n_undefined[2 * 4 + 3], 1);
    EXPECT_EQ(m.at(2, 3), 0.0);
    // A–D: group 0 one-hot vs uniform (0.6225…), group 1 one-hot vs uniform again → same mean
    EXPECT_NEAR(m.at(0, 3), 0.6225562489182657, 1e-13);
    // B–D: group 0 {0,1} vs uniform, group 1 {1,0} vs uniform → 0.6225… as well
    EXPECT_NEAR(m.at(1, 3), 0.6225562489182657, 1e-13);
    // clustering input: the undefined C–D cell takes the largest defined value
    const auto d = m.distances_filled();
    EXPECT_NEAR(d[2 * 4 + 3], 0.6225562489182657, 1e-13);
    for (double v : d) EXPECT_TRUE(std::isfinite(v));
    // float input gives the same structure
    const std::vector<float> qf(q.begin(), q.end());
    const auto mf = rs::divergence_matrix(qf, 4, 2, 2, present);
    EXPECT_NEAR(mf.at(0, 2), m.at(0, 2), 1e-7);
}

}  // namespace
