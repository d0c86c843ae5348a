// steermoe.h against values computed by hand from github.com/JACKPURCELL/SteerMoE @ 0986afb7
// (custom_steering.ipynb calc_risk_diff, src/utils.py steer_moe): risk difference, ranking by |RD| across
// layers, the per-layer top-k cap on activation, reverse, an expert neither side uses.
#include <gtest/gtest.h>

#include <vector>

#include "routescope/steermoe.h"

namespace {

TEST(SteerMoe, RiskDifferenceByHand) {
    // top-1 routing, side A 4 tokens {3, 0, 1}, side B 3 tokens {1, 2, 0}:
    // RD = {3/4 − 1/3, 0 − 2/3, 1/4 − 0}
    const std::vector<int64_t> a{3, 0, 1}, b{1, 2, 0};
    const auto rd = rs::steermoe_risk_difference(a, 4, b, 3);
    EXPECT_NEAR(rd[0], 0.75 - 1.0 / 3.0, 1e-15);
    EXPECT_NEAR(rd[1], -2.0 / 3.0, 1e-15);
    EXPECT_EQ(rd[2], 0.25);
    // an expert neither side routes to: RD = 0
    const std::vector<int64_t> z{0};
    EXPECT_EQ(rs::steermoe_risk_difference(z, 5, z, 7)[0], 0.0);
}

TEST(SteerMoe, RankingCapAndReverse) {
    // layer 0: RD {5/12, −2/3, 1/4}; layer 1: {1/2, 1/2, −1}
    // by |RD|: (1,2) −1, (0,1) −2/3, (1,0) .5, (1,1) .5 (tie: layer/expert order), (0,0) 5/12, (0,2) .25
    const std::vector<std::vector<double>> rd{{5.0 / 12.0, -2.0 / 3.0, 0.25}, {0.5, 0.5, -1.0}};
    const auto s = rs::steermoe_select(rd, {.n_activate = 3, .n_deactivate = 1, .top_k = 1});
    ASSERT_EQ(s.ranking.size(), 6u);
    EXPECT_EQ(s.ranking[0].layer, 1);
    EXPECT_EQ(s.ranking[0].expert, 2);
    EXPECT_EQ(s.ranking[2].expert, 0);
    EXPECT_EQ(s.ranking[3].expert, 1);
    EXPECT_EQ(s.n_positive, 4);
    EXPECT_EQ(s.n_negative, 2);
    // the three best RD > 0: (1,0), (1,1), (0,0); top-1 per layer drops (1,1)
    ASSERT_EQ(s.activate.size(), 2u);
    EXPECT_EQ(s.activate[0].layer, 1);
    EXPECT_EQ(s.activate[0].expert, 0);
    EXPECT_EQ(s.activate[1].layer, 0);
    EXPECT_EQ(s.activate[1].expert, 0);
    EXPECT_EQ(s.n_dropped_by_cap, 1);
    ASSERT_EQ(s.deactivate.size(), 1u);
    EXPECT_EQ(s.deactivate[0].layer, 1);
    EXPECT_EQ(s.deactivate[0].expert, 2);
    // no cap: all three
    EXPECT_EQ(rs::steermoe_select(rd, {.n_activate = 3}).activate.size(), 3u);
    // reverse: RD negated, (1,2) and (0,1) become the ones to activate
    const auto r = rs::steermoe_select(rd, {.n_activate = 2, .reverse = true, .top_k = 8});
    ASSERT_EQ(r.activate.size(), 2u);
    EXPECT_EQ(r.activate[0].layer, 1);
    EXPECT_EQ(r.activate[0].expert, 2);
    EXPECT_EQ(r.activate[0].risk_difference, 1.0);
    EXPECT_EQ(r.activate[1].expert, 1);
    // RD = 0 is never steered, however many are asked for
    const std::vector<std::vector<double>> zero{{0.0, 0.0}};
    const auto z = rs::steermoe_select(zero, {.n_activate = 5, .n_deactivate = 5});
    EXPECT_TRUE(z.activate.empty() && z.deactivate.empty());
    EXPECT_EQ(z.n_positive + z.n_negative, 0);
}

}  // namespace
