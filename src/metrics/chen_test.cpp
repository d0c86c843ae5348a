// chen.h against values computed by hand from github.com/conctsai/Multilingualism-in-Mixture-of-Experts-LLMs
// @ a3be2b66, intervention/vllm_intervention_flores.py: per-language top-k mask, shares with the 1e-10
// guard, strict thresholds, an expert no language uses, one language, ties in the top-k.
#include <gtest/gtest.h>

#include <vector>

#include "routescope/chen.h"

namespace {

// 3 languages × 5 experts, k = 2:
//        e0   e1   e2   e3   e4
//   L0  0.5  0.3  0.1  0.0  0.0     top-2 {e0, e1}
//   L1  0.4  0.0  0.3  0.1  0.0     top-2 {e0, e2}
//   L2  0.1  0.2  0.0  0.6  0.0     top-2 {e3, e1}
// masked column sums: e0 .9, e1 .5, e2 .3, e3 .6, e4 0
// shares: L0 {.5/.9, .3/.5, 0, 0, 0}, L1 {.4/.9, 0, 1, 0, 0}, L2 {0, .2/.5, 0, 1, 0}  (each ÷ (sum + 1e-10))
const std::vector<double> kF{0.5, 0.3, 0.1, 0.0, 0.0, 0.4, 0.0, 0.3, 0.1, 0.0, 0.1, 0.2, 0.0, 0.6, 0.0};

TEST(Chen, SharesByHand) {
    const auto s = rs::chen_shares(kF, 3, 5, 2);
    const std::vector<double> want{0.5 / 0.9, 0.6, 0, 0, 0, 0.4 / 0.9, 0, 1, 0, 0, 0, 0.4, 0, 1, 0};
    ASSERT_EQ(s.size(), want.size());
    for (size_t i = 0; i < s.size(); ++i) EXPECT_NEAR(s[i], want[i], 1e-9) << i;
    EXPECT_EQ(s[4], 0.0);   // never activated: 0 / (0 + 1e-10)
    EXPECT_LT(s[11], 0.4);  // .2 / (.5 + 1e-10) is just below .4
}

TEST(Chen, SharedAndExclusive) {
    const auto s = rs::chen_shares(kF, 3, 5, 2);
    // steering's θ = 0.7: e0 {.56, .44, 0} and e1 {.6, 0, .4} are shared; e2, e3 have a share of 1; e4 has no
    // share > 0
    EXPECT_EQ(rs::chen_shared_experts(s, 3, 5, 0.7), (std::vector<int>{0, 1}));
    // θ = 0.6: e1's L0 share .6/(.5 + 1e-10) is below .6 by the guard only, so e1 stays shared; θ = 0.5: e0
    // (.56) and e1 (.6) are out
    EXPECT_EQ(rs::chen_shared_experts(s, 3, 5, 0.6), (std::vector<int>{0, 1}));
    EXPECT_TRUE(rs::chen_shared_experts(s, 3, 5, 0.5).empty());
    // exclusive, θ = 0.4 (interventions): L0 {e0 .56, e1 .6}; L1 {e0 .44, e2 1}; L2 {e3} (e1's .4 − ε is not
    // > .4: the threshold is strict)
    const int l0[] = {0}, l1[] = {1}, l2[] = {2}, l01[] = {0, 1};
    EXPECT_EQ(rs::chen_exclusive_experts(s, 3, 5, l0, 0.4), (std::vector<int>{0, 1}));
    EXPECT_EQ(rs::chen_exclusive_experts(s, 3, 5, l1, 0.4), (std::vector<int>{0, 2}));
    EXPECT_EQ(rs::chen_exclusive_experts(s, 3, 5, l2, 0.4), (std::vector<int>{3}));
    // several targets add their shares: L0 + L1 at .7 → e0 (1.0), e2 (1.0); e1 (.6) is not
    EXPECT_EQ(rs::chen_exclusive_experts(s, 3, 5, l01, 0.7), (std::vector<int>{0, 2}));
}

TEST(Chen, OneLanguageAndTopkTies) {
    // one language: every top-k expert has share 1 − ε → exclusive at .4, never shared
    const std::vector<double> f{0.2, 0.2, 0.2, 0.1};
    const auto s = rs::chen_shares(f, 1, 4, 2);  // tie of three at .2: the smaller ids e0, e1 are kept
    EXPECT_NEAR(s[0], 1.0, 1e-9);
    EXPECT_NEAR(s[1], 1.0, 1e-9);
    EXPECT_EQ(s[2], 0.0);
    EXPECT_EQ(s[3], 0.0);
    const int t[] = {0};
    EXPECT_EQ(rs::chen_exclusive_experts(s, 1, 4, t, 0.4), (std::vector<int>{0, 1}));
    EXPECT_TRUE(rs::chen_shared_experts(s, 1, 4, 0.7).empty());
    // k ≥ E keeps every expert
    const auto all = rs::chen_shares(f, 1, 4, 9);
    EXPECT_NEAR(all[3], 1.0, 1e-9);
}

}  // namespace
