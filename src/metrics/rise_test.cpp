// rise.h against values computed by hand from the formulas of github.com/init-neok/rise @ 9d7cb274,
// rise/expert_selector.py: specificity, overlap (population σ, μ = 0), Eq. 8 composites, Python's round
// for the zone bounds, floor budgets with the capacity spill-over, ranking across the layers of a zone and
// its ties.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "routescope/common.h"
#include "routescope/rise.h"

namespace {

// One layer, 2 languages × 3 experts (target = L0):
//        e0   e1   e2
//   L0  0.6  0.0  0.2
//   L1  0.2  0.0  0.2
// ā = {.4, 0, .2}; S = {.6/.4 = 1.5, 0 (ā = 0), 1}; σ = {.2, 0, 0} → O = {1/(1 + .5) = 2/3, 1 (μ = 0), 1}
// α = 10: Spec = {1.5·7 = 10.5, 0, 1·3 = 3}, Ovlp = {2/3·5 = 10/3, 1·1 = 1, 1·3 = 3}
const std::vector<double> kA{0.6, 0.0, 0.2, 0.2, 0.0, 0.2};

TEST(Rise, SpecificityAndOverlapByHand) {
    const auto m = rs::rise_mean_frequency(kA, 2, 3);
    EXPECT_NEAR(m[0], 0.4, 1e-15);
    EXPECT_EQ(m[1], 0.0);
    const auto s = rs::rise_specificity(kA, 2, 3, 0);
    EXPECT_NEAR(s[0], 1.5, 1e-12);
    EXPECT_EQ(s[1], 0.0);  // never activated: 0 / 1e-8
    EXPECT_NEAR(s[2], 1.0, 1e-12);
    const auto s1 = rs::rise_specificity(kA, 2, 3, 1);
    EXPECT_NEAR(s1[0], 0.5, 1e-12);
    const auto o = rs::rise_overlap(kA, 2, 3);
    EXPECT_NEAR(o[0], 2.0 / 3.0, 1e-12);
    EXPECT_EQ(o[1], 1.0);  // μ = 0 (and σ = 0): CV = 0, O = 1 — the authors' value for an unused expert
    EXPECT_EQ(o[2], 1.0);  // σ = 0 with μ > 0
    // population σ, not the sample σ: three languages {0, .3, .6} → σ = √(.06) , μ = .3
    const auto o3 = rs::rise_overlap(std::vector<double>{0.0, 0.3, 0.6}, 3, 1);
    EXPECT_NEAR(o3[0], 1.0 / (1.0 + std::sqrt(0.06) / 0.3), 1e-12);
}

TEST(Rise, OneLanguage) {
    // one language: ā = a, so S = 1 wherever a > 0 and O = 1 (σ = 0) — no signal, which is why the
    // authors (and `experts --method rise`) require two languages
    const std::vector<double> a{0.5, 0.0, 0.25};
    EXPECT_EQ(rs::rise_specificity(a, 1, 3, 0), (std::vector<double>{1.0, 0.0, 1.0}));
    EXPECT_EQ(rs::rise_overlap(a, 1, 3), (std::vector<double>{1.0, 1.0, 1.0}));
}

TEST(Rise, PythonRoundAndZoneBounds) {
    EXPECT_EQ(rs::round_half_even(1.5), 2);
    EXPECT_EQ(rs::round_half_even(2.5), 2);
    EXPECT_EQ(rs::round_half_even(4.5), 4);
    EXPECT_EQ(rs::round_half_even(7.5), 8);
    EXPECT_EQ(rs::round_half_even(0.75), 1);
    EXPECT_EQ(rs::round_half_even(3.0), 3);
    // L = 48 (Qwen3-30B-A3B): 18, 30; L = 4: round(1.5) = 2, round(2.5) = 2 (no middle zone);
    // L = 8: 3, 5; L = 12: round(4.5) = 4, round(7.5) = 8
    EXPECT_EQ(rs::rise_zone_bounds(48, 0.375, 0.25), (std::array<int, 2>{18, 30}));
    EXPECT_EQ(rs::rise_zone_bounds(4, 0.375, 0.25), (std::array<int, 2>{2, 2}));
    EXPECT_EQ(rs::rise_zone_bounds(8, 0.375, 0.25), (std::array<int, 2>{3, 5}));
    EXPECT_EQ(rs::rise_zone_bounds(12, 0.375, 0.25), (std::array<int, 2>{4, 8}));
}

TEST(Rise, BudgetsFloorAndSpillOver) {
    // K = 128 (the authors' Qwen3 run): ⌊44.8⌋ = 44, ⌊32⌋ = 32, deep 52
    EXPECT_EQ(rs::rise_budgets(128, 0.35, 0.25, {18 * 128, 12 * 128, 18 * 128}),
              (std::array<int64_t, 3>{44, 32, 52}));
    // K = 10, a zone with no layers: {3, 2, 5} → middle capped at 0, its 2 go to the zone with the most
    // room (shallow: 6 − 3 = 3 > deep: 6 − 5 = 1)
    EXPECT_EQ(rs::rise_budgets(10, 0.35, 0.25, {6, 0, 6}), (std::array<int64_t, 3>{5, 0, 5}));
    // a zone smaller than its budget: {3, 2, 5} with deep capacity 3 → 2 spill into the most room
    // (middle: 10 − 2 = 8 > shallow: 10 − 3 = 7)
    EXPECT_EQ(rs::rise_budgets(10, 0.35, 0.25, {10, 10, 3}), (std::array<int64_t, 3>{3, 4, 3}));
    // equal room: the first zone (shallow) wins; K = 4 all to deep {0, 0, 4}, deep holds 2
    EXPECT_EQ(rs::rise_budgets(4, 0.0, 0.0, {3, 3, 2}), (std::array<int64_t, 3>{2, 0, 2}));
    EXPECT_THROW(rs::rise_budgets(13, 0.35, 0.25, {6, 0, 6}), rs::Error);  // more than the pool
}

TEST(Rise, SelectionAcrossLayersWithTies) {
    // 4 layers with kA: bounds {2, 2} (no middle), capacity {6, 0, 6}; K = 6 → {2, 1, 3} → middle's 1 to
    // shallow (room 4 > 3) → {3, 0, 3}. Shallow (layers 0, 1) by Spec: (0,0) 10.5, (1,0) 10.5, then (0,2)
    // and (1,2) tie at 3 for the last place → (0,2) (stable order). Deep (2, 3) likewise.
    const std::vector<std::vector<double>> layers(4, kA);
    const auto sel = rs::rise_select(layers, 2, 3, 0, {.budget = 6});
    EXPECT_EQ(sel.bounds, (std::array<int, 2>{2, 2}));
    EXPECT_EQ(sel.budgets, (std::array<int64_t, 3>{3, 0, 3}));
    ASSERT_EQ(sel.experts.size(), 6u);
    const std::vector<std::pair<int, int>> want{{0, 0}, {0, 2}, {1, 0}, {2, 0}, {2, 2}, {3, 0}};
    for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(sel.experts[i].layer, want[i].first) << i;
        EXPECT_EQ(sel.experts[i].expert, want[i].second) << i;
    }
    EXPECT_EQ(sel.experts[0].zone, rs::RiseZone::shallow);
    EXPECT_NEAR(sel.experts[0].score, 10.5, 1e-12);
    EXPECT_NEAR(sel.experts[0].raw, 1.5, 1e-12);
    EXPECT_NEAR(sel.experts[1].score, 3.0, 1e-12);
    EXPECT_EQ(sel.experts[5].zone, rs::RiseZone::deep);
}

TEST(Rise, MiddleZoneRanksByOverlap) {
    // 8 layers: bounds {3, 5}; K = 4 → {⌊1.4⌋ = 1, ⌊1.0⌋ = 1, 2}. Middle (layers 3, 4) by Ovlp
    // {10/3, 1, 3}: (3,0) with O = 2/3. Shallow: (0,0); deep: (5,0), (6,0).
    const std::vector<std::vector<double>> layers(8, kA);
    const auto sel = rs::rise_select(layers, 2, 3, 0, {.budget = 4});
    EXPECT_EQ(sel.budgets, (std::array<int64_t, 3>{1, 1, 2}));
    ASSERT_EQ(sel.experts.size(), 4u);
    EXPECT_EQ(sel.experts[1].zone, rs::RiseZone::middle);
    EXPECT_EQ(sel.experts[1].layer, 3);
    EXPECT_EQ(sel.experts[1].expert, 0);
    EXPECT_NEAR(sel.experts[1].score, 10.0 / 3.0, 1e-12);
    EXPECT_NEAR(sel.experts[1].raw, 2.0 / 3.0, 1e-12);
    EXPECT_EQ(sel.experts[2].layer, 5);
    EXPECT_EQ(sel.experts[3].layer, 6);
    // α = 0: raw scores decide; the unused e1 (O = 1) ties with e2 (O = 1) above e0 (2/3) → (3,1) first
    const auto flat = rs::rise_select(layers, 2, 3, 0, {.budget = 4, .alpha = 0.0});
    EXPECT_EQ(flat.experts[1].layer, 3);
    EXPECT_EQ(flat.experts[1].expert, 1);
    EXPECT_EQ(flat.experts[1].score, 1.0);
}

TEST(Rise, BudgetLargerThanAZone) {
    // 4 layers, bounds {2, 2}, K = 12 = the whole pool: every expert is selected, none twice
    const std::vector<std::vector<double>> layers(4, kA);
    const auto sel = rs::rise_select(layers, 2, 3, 0, {.budget = 12});
    EXPECT_EQ(sel.budgets, (std::array<int64_t, 3>{6, 0, 6}));
    EXPECT_EQ(sel.experts.size(), 12u);
    EXPECT_THROW(rs::rise_select(layers, 2, 3, 0, {.budget = 13}), rs::Error);
}

}  // namespace
