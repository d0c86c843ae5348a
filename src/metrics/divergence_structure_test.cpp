// cluster.h and middle_layers.h: average-linkage merges, dendrogram leaf order and flat cuts on hand-made
// matrices, and the automatic middle-layer rule on hand-made U-shaped curves (excluded ends, undefined
// layers, the per-layer mean over languages). Merges and thresholds are worked out in the comments.
#include <gtest/gtest.h>

#include <optional>
#include <vector>

#include "routescope/cluster.h"
#include "routescope/middle_layers.h"

namespace {

void expect_merge(const rs::Merge & m, int a, int b, double d, int size) {
    EXPECT_EQ(m.a, a);
    EXPECT_EQ(m.b, b);
    EXPECT_DOUBLE_EQ(m.distance, d);
    EXPECT_EQ(m.size, size);
}

TEST(AverageLinkage, FourByFour) {
    //      0  1  2  3
    //  0 [ 0  5  1  6 ]
    //  1 [ 5  0  4  2 ]
    //  2 [ 1  4  0  7 ]
    //  3 [ 6  2  7  0 ]
    // step 1: min 1 at (0,2) → cluster 4 = {0,2}; d(4,1) = (5+4)/2 = 4.5, d(4,3) = (6+7)/2 = 6.5
    // step 2: min 2 at (1,3) → cluster 5 = {1,3}
    // step 3: d(4,5) = (1·4.5 + 1·6.5)/2 = 5.5 (= mean of the cross distances 5,6,4,7) → cluster 6
    const std::vector<double> d{0, 5, 1, 6, 5, 0, 4, 2, 1, 4, 0, 7, 6, 2, 7, 0};
    const auto m = rs::average_linkage(d, 4);
    ASSERT_EQ(m.size(), 3u);
    expect_merge(m[0], 0, 2, 1.0, 2);
    expect_merge(m[1], 1, 3, 2.0, 2);
    expect_merge(m[2], 4, 5, 5.5, 4);
    // dendrogram: 6 → (4, 5) → 4 = (0, 2), 5 = (1, 3)
    EXPECT_EQ(rs::dendrogram_leaf_order(m, 4), (std::vector<int>{0, 2, 1, 3}));
    EXPECT_EQ(rs::cut_tree(m, 4, 2), (std::vector<int>{0, 1, 0, 1}));
    EXPECT_EQ(rs::cut_tree(m, 4, 1), (std::vector<int>{0, 0, 0, 0}));
    EXPECT_EQ(rs::cut_tree(m, 4, 4), (std::vector<int>{0, 1, 2, 3}));
    EXPECT_EQ(rs::cut_tree(m, 4, 3), (std::vector<int>{0, 1, 0, 2}));
}

TEST(AverageLinkage, LeafJoinsCluster) {
    // d(0,1) = 1, d(0,2) = 3, d(1,2) = 5: merge (0,1) at 1 → cluster 3; d(3,2) = (3+5)/2 = 4
    // → merge (2,3) at 4 (a < b puts the leaf first); leaves 2, then 0, 1
    const std::vector<double> d{0, 1, 3, 1, 0, 5, 3, 5, 0};
    const auto m = rs::average_linkage(d, 3);
    ASSERT_EQ(m.size(), 2u);
    expect_merge(m[0], 0, 1, 1.0, 2);
    expect_merge(m[1], 2, 3, 4.0, 3);
    EXPECT_EQ(rs::dendrogram_leaf_order(m, 3), (std::vector<int>{2, 0, 1}));
}

TEST(AverageLinkage, WeightsBySize) {
    // 5 points on a line at 0, 1, 10, 11, 12 (|x−y| distances)
    // step 1: (0,1) at 1 → 5; step 2: (2,3) at 1 → 6 (tie with (3,4) at 1; (2,3) is the smaller pair)
    // step 3: d(6,4) = (2+1)/2 = 1.5 vs d(5,6) = (10+11+9+10)/4 = 10 → (4,6) at 1.5 → 7 = {2,3,4}
    // step 4: d(5,7) = size-weighted: (2·10 + 1·(12+11)/2)/3 = (20 + 11.5)/3 = 10.5 (mean of 6 cross
    //         distances 10,11,12,9,10,11 = 63/6 = 10.5) → (5,7) at 10.5
    const double x[5] = {0, 1, 10, 11, 12};
    std::vector<double> d(25);
    for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 5; ++j) d[(size_t)(i * 5 + j)] = std::abs(x[i] - x[j]);
    const auto m = rs::average_linkage(d, 5);
    ASSERT_EQ(m.size(), 4u);
    expect_merge(m[0], 0, 1, 1.0, 2);
    expect_merge(m[1], 2, 3, 1.0, 2);
    expect_merge(m[2], 4, 6, 1.5, 3);
    expect_merge(m[3], 5, 7, 10.5, 5);
    EXPECT_EQ(rs::dendrogram_leaf_order(m, 5), (std::vector<int>{0, 1, 4, 2, 3}));
    EXPECT_EQ(rs::cut_tree(m, 5, 2), (std::vector<int>{0, 0, 1, 1, 1}));
}

TEST(AverageLinkage, DegenerateSizes) {
    EXPECT_TRUE(rs::average_linkage({}, 0).empty());
    const std::vector<double> one{0.0};
    EXPECT_TRUE(rs::average_linkage(one, 1).empty());
    EXPECT_EQ(rs::dendrogram_leaf_order({}, 1), (std::vector<int>{0}));
    EXPECT_TRUE(rs::dendrogram_leaf_order({}, 0).empty());
    // all distances equal: ties resolve to the smallest id pair at every step
    const std::vector<double> eq{0, 1, 1, 1, 0, 1, 1, 1, 0};
    const auto m = rs::average_linkage(eq, 3);
    expect_merge(m[0], 0, 1, 1.0, 2);
    expect_merge(m[1], 2, 3, 1.0, 3);
}

// ---------------------------------------------------------------------------------------------------
// Middle-layer range

TEST(MiddleLayers, UShape) {
    // interior 1..6; lo = 0.2 at layer 3; hi = 0.9; θ = 0.2 + 0.25·0.7 = 0.375
    // run around 3: 2 (0.3) and 4 (0.25), 5 (0.35) are ≤ θ; 1 (0.6) and 6 (0.5) are not → [2, 5]
    const std::vector<double> c{0.9, 0.6, 0.3, 0.2, 0.25, 0.35, 0.5, 0.8};
    const auto r = rs::middle_layer_range(c);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->first, 2);
    EXPECT_EQ(r->last, 5);
    EXPECT_EQ(r->argmin, 3);
    EXPECT_DOUBLE_EQ(r->lo, 0.2);
    EXPECT_DOUBLE_EQ(r->hi, 0.9);
    EXPECT_NEAR(r->threshold, 0.375, 1e-15);
}

TEST(MiddleLayers, AlphaExtremes) {
    const std::vector<double> c{0.9, 0.6, 0.3, 0.2, 0.25, 0.35, 0.5, 0.8};
    // α = 0: θ = lo → only the minimum
    auto r = rs::middle_layer_range(c, {.alpha = 0.0});
    EXPECT_EQ(r->first, 3);
    EXPECT_EQ(r->last, 3);
    // α = 1: θ = hi → the whole interior, never the ends
    r = rs::middle_layer_range(c, {.alpha = 1.0});
    EXPECT_EQ(r->first, 1);
    EXPECT_EQ(r->last, 6);
}

TEST(MiddleLayers, LowFirstLayerIsIgnored) {
    // Phi-3.5-MoE-like: layer 0 is very low. Interior 1..5: lo = 0.3 at 3, hi = 0.9,
    // θ = 0.3 + 0.25·0.6 = 0.45 → 2 (0.4) and 4 (0.35) join, 1 (0.8) and 5 (0.7) do not → [2, 4]
    const std::vector<double> c{0.05, 0.8, 0.4, 0.3, 0.35, 0.7, 0.9};
    auto r = rs::middle_layer_range(c);
    EXPECT_EQ(r->first, 2);
    EXPECT_EQ(r->last, 4);
    // without excluding the ends: lo = 0.05 at 0, θ = 0.05 + 0.25·0.85 = 0.2625 → [0, 0]
    r = rs::middle_layer_range(c, {.alpha = 0.25, .exclude_ends = false});
    EXPECT_EQ(r->first, 0);
    EXPECT_EQ(r->last, 0);
}

TEST(MiddleLayers, UndefinedLayerEndsTheRun) {
    // same as UShape but layer 5 undefined: run [2, 4]
    const std::vector<std::optional<double>> c{0.9, 0.6, 0.3, 0.2, 0.25, std::nullopt, 0.5, 0.8};
    const auto r = rs::middle_layer_range(c);
    EXPECT_EQ(r->first, 2);
    EXPECT_EQ(r->last, 4);
    // an undefined first layer does not count for hi: hi = max of the rest
    const std::vector<std::optional<double>> c2{std::nullopt, 0.6, 0.3, 0.2, 0.25, 0.35, 0.5, 0.8};
    EXPECT_DOUBLE_EQ(rs::middle_layer_range(c2)->hi, 0.8);
}

TEST(MiddleLayers, FlatShortAndEmpty) {
    // flat: every interior layer is at the minimum → whole interior
    const std::vector<double> flat(6, 0.4);
    auto r = rs::middle_layer_range(flat);
    EXPECT_EQ(r->first, 1);
    EXPECT_EQ(r->last, 4);
    EXPECT_EQ(r->argmin, 1);  // the first minimum
    // two layers: nothing to exclude; lo = 0.1 at 1, hi = 0.5, θ = 0.2 → [1, 1]
    const std::vector<double> two{0.5, 0.1};
    r = rs::middle_layer_range(two);
    EXPECT_EQ(r->first, 1);
    EXPECT_EQ(r->last, 1);
    EXPECT_FALSE(rs::middle_layer_range(std::vector<double>{}).has_value());
    const std::vector<std::optional<double>> none(5);
    EXPECT_FALSE(rs::middle_layer_range(none).has_value());
}

TEST(MiddleLayers, MeanOverLanguages) {
    // 2 languages × 3 layers; layer 1 undefined for language 1, layer 2 for both
    const std::vector<std::optional<double>> div{0.2, 0.4, std::nullopt, 0.6, std::nullopt, std::nullopt};
    const auto m = rs::mean_over_languages(div, 2, 3);
    ASSERT_EQ(m.size(), 3u);
    EXPECT_DOUBLE_EQ(*m[0], 0.4);  // (0.2 + 0.6)/2
    EXPECT_DOUBLE_EQ(*m[1], 0.4);  // language 0 only
    EXPECT_FALSE(m[2].has_value());
}

}  // namespace
