// specialisation.h and language_experts.h: Δ of Eq. 3 (bounds, strict τ), multilingual experts, set
// overlaps, and the routing isolation of two languages on a hand-made frequency table (values in the
// comments). RISE and Chen et al.: rise_test.cpp, chen_test.cpp.
#include <gtest/gtest.h>

#include <vector>

#include "routescope/language_experts.h"
#include "routescope/specialisation.h"

namespace {

TEST(Delta, ByHandAndBounds) {
    // Δ = mean1 − mean2 = {1/6 − 1/2, 1/2 − 1/2, 2/3 − 0, 1/2 − 0} = {−1/3, 0, 2/3, 1/2}
    const std::vector<double> m1{1.0 / 6.0, 0.5, 2.0 / 3.0, 0.5}, m2{0.5, 0.5, 0.0, 0.0};
    const auto d = rs::activation_delta(m1, m2);
    EXPECT_NEAR(d[0], -1.0 / 3.0, 1e-15);
    EXPECT_EQ(d[1], 0.0);
    EXPECT_DOUBLE_EQ(d[2], 2.0 / 3.0);
    EXPECT_EQ(d[3], 0.5);
    // extremes: always-on vs never-on → ±1
    const auto e = rs::activation_delta(std::vector<double>{1.0, 0.0}, std::vector<double>{0.0, 1.0});
    EXPECT_EQ(e, (std::vector<double>{1.0, -1.0}));
    for (double v : d) {
        EXPECT_GE(v, -1.0);
        EXPECT_LE(v, 1.0);
    }
    // τ is strict: Δ = 0.5 is not > 0.5
    EXPECT_EQ(rs::specialised_experts(d, 0.3), (std::vector<int>{2, 3}));
    EXPECT_EQ(rs::specialised_experts(d, 0.5), (std::vector<int>{2}));
    EXPECT_TRUE(rs::specialised_experts(d, 1.0).empty());
}

TEST(Delta, FromAccumulators) {
    // corpus 1: one sequence, rows {0},{0} (K = 1) → a/L = {1, 0}; corpus 2: rows {1} → {0, 1}
    const std::vector<int16_t> s1{0, 0}, s2{1};
    rs::ActivationAccumulator c1(2), c2(2), empty(2);
    c1.add(rs::TopkRows::dense(s1, 2, 1));
    c2.add(rs::TopkRows::dense(s2, 1, 1));
    EXPECT_EQ(rs::activation_delta(c1, c2), (std::vector<double>{1.0, -1.0}));
    EXPECT_TRUE(rs::activation_delta(c1, empty).empty());
}

TEST(MultilingualExperts, AnyLanguageAboveTau) {
    // two non-pivot languages, E = 4, τ = 0.3: lang 1 selects {0}, lang 2 selects {2, 3} → {0, 2, 3}
    const std::vector<double> deltas{0.4, 0.0, 0.0, 0.1, 0.0, -0.2, 0.35, 0.31};
    EXPECT_EQ(rs::multilingual_experts(deltas, 4, 0.3), (std::vector<int>{0, 2, 3}));
    EXPECT_EQ(rs::multilingual_experts(deltas, 4, 0.34), (std::vector<int>{0, 2}));
    EXPECT_TRUE(rs::multilingual_experts(deltas, 4, 0.5).empty());
}

TEST(SetOverlap, IntersectionAndJaccard) {
    // {1,2,3} ∩ {2,3,4,5} = {2,3}; union has 5 → J = 0.4
    const std::vector<int> a{1, 2, 3}, b{2, 3, 4, 5}, none{}, other{7, 8};
    const auto o = rs::set_overlap(a, b);
    EXPECT_EQ(o.n_intersection, 2);
    EXPECT_EQ(o.n_union, 5);
    EXPECT_EQ(o.intersection, (std::vector<int>{2, 3}));
    EXPECT_DOUBLE_EQ(*o.jaccard, 0.4);
    EXPECT_EQ(*rs::set_overlap(a, other).jaccard, 0.0);
    EXPECT_EQ(*rs::set_overlap(a, a).jaccard, 1.0);
    EXPECT_FALSE(rs::set_overlap(none, none).jaccard.has_value());
    EXPECT_EQ(*rs::set_overlap(none, a).jaccard, 0.0);
}

TEST(SetOverlap, Layered) {
    // layer 0: {1,2} vs {2} → ∩ 1, ∪ 2; layer 1: {} vs {} → 0, 0; layer 2: {5} vs {6} → 0, 2
    // totals: ∩ 1, ∪ 4 → J = 0.25
    const std::vector<std::vector<int>> a{{1, 2}, {}, {5}}, b{{2}, {}, {6}};
    const auto o = rs::layered_overlap(a, b);
    ASSERT_EQ(o.per_layer.size(), 3u);
    EXPECT_DOUBLE_EQ(*o.per_layer[0].jaccard, 0.5);
    EXPECT_FALSE(o.per_layer[1].jaccard.has_value());
    EXPECT_EQ(*o.per_layer[2].jaccard, 0.0);
    EXPECT_EQ(o.total.n_intersection, 1);
    EXPECT_EQ(o.total.n_union, 4);
    EXPECT_DOUBLE_EQ(*o.total.jaccard, 0.25);
}

// ---------------------------------------------------------------------------------------------------
// Routing isolation (ours) on a hand-made 3-language × 4-expert frequency table:
//
//        e0   e1   e2   e3
//   L0  0.9  0.5  0.1  0.5     (row sum 2.0)
//   L1  0.2  0.6  0.1  0.4     (row sum 1.3)
//   L2  0.1  0.4  0.8  0.2     (row sum 1.5)

const std::vector<double> kF{0.9, 0.5, 0.1, 0.5, 0.2, 0.6, 0.1, 0.4, 0.1, 0.4, 0.8, 0.2};

TEST(LanguageExperts, TopExperts) {
    // L0 ranked: e0 (.9), then e1 and e3 tie at .5 → smaller id e1 first, then e3, e2
    const std::vector<double> l0(kF.begin(), kF.begin() + 4);
    EXPECT_EQ(rs::top_experts(l0, 4), (std::vector<int>{0, 1, 3, 2}));
    EXPECT_EQ(rs::top_experts(l0, 2), (std::vector<int>{0, 1}));
    EXPECT_EQ(rs::top_experts(l0, 9).size(), 4u);
    EXPECT_TRUE(rs::top_experts(l0, 0).empty());
}

TEST(LanguageExperts, RoutingIsolation) {
    // top-3 sets: L0 {0,1,3}, L1 {1,3,0}, L2 {2,1,3} → J(L0,L1) = 1, J(L0,L2) = |{1,3}|/|{0,1,2,3}| = 0.5
    // top-1 sets: {0}, {1}, {2} → all disjoint → 0 (complete isolation)
    const auto m3 = rs::routing_isolation_matrix(kF, 3, 4, 3);
    EXPECT_EQ(m3, (std::vector<double>{1, 1, 0.5, 1, 1, 0.5, 0.5, 0.5, 1}));
    const auto m1 = rs::routing_isolation_matrix(kF, 3, 4, 1);
    EXPECT_EQ(m1, (std::vector<double>{1, 0, 0, 0, 1, 0, 0, 0, 1}));
    // top-2: L0 {0,1}, L1 {1,3}: J = 1/3
    const std::vector<double> l0(kF.begin(), kF.begin() + 4), l1(kF.begin() + 4, kF.begin() + 8);
    EXPECT_DOUBLE_EQ(rs::routing_isolation(l0, l1, 2), 1.0 / 3.0);
}

}  // namespace
