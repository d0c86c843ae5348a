// Steering: the three logit operations against hand-computed values, and spec validation errors.
#include "routescope/steer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "routescope/common.h"

namespace {

rs::ModelInfo model() {
    rs::ModelInfo m;
    m.arch = "olmoe";
    m.n_layer = 6;
    m.moe_layers = {1, 2, 3, 4, 5};  // block 0 dense
    m.n_expert = 4;
    m.top_k = 2;
    return m;
}

rs::SteerPlan plan(const std::string & json) {
    return rs::steer_plan_from_json(nlohmann::json::parse(json), model(), ".");
}

TEST(SteerLogits, SoftAddsLambdaTimesStd) {
    // z = [1,2,3,4]: mean 2.5, population variance (2.25+0.25+0.25+2.25)/4 = 1.25, std = sqrt(1.25)
    std::vector<float> z = {1, 2, 3, 4};
    const rs::SteerOp op{rs::SteerMethod::soft, 0.5, 1.0, {0, 2}};
    rs::steer_logits(z, std::span(&op, 1), 0, 1, 0);
    EXPECT_FLOAT_EQ(z[0], (float)(1 + 0.5 * std::sqrt(1.25)));  // 1.5590169944
    EXPECT_FLOAT_EQ(z[1], 2.0f);
    EXPECT_FLOAT_EQ(z[2], (float)(3 + 0.5 * std::sqrt(1.25)));  // std taken before the op, once
    EXPECT_FLOAT_EQ(z[3], 4.0f);
}

TEST(SteerLogits, SoftNegativeLambdaAndTwoExperts) {
    std::vector<float> z = {0.0f, 2.0f};  // E = 2: std = 1
    const rs::SteerOp op{rs::SteerMethod::soft, -3.0, 1.0, {1}};
    rs::steer_logits(z, std::span(&op, 1), 0, 1, 0);
    EXPECT_FLOAT_EQ(z[1], -1.0f);
}

TEST(SteerLogits, ForceAndSuppress) {
    std::vector<float> z = {0.5f, -2.0f, 3.0f, 1.0f};
    const rs::SteerOp force{rs::SteerMethod::force, 0, 1.0, {1, 3}};
    rs::steer_logits(z, std::span(&force, 1), 7, 2, 42);
    EXPECT_NEAR(z[1], 3.0f, 1e-5);  // max(z) + ε, |ε| ~ 1e-6
    EXPECT_NEAR(z[3], 3.0f, 1e-5);
    EXPECT_FLOAT_EQ(z[0], 0.5f);
    // deterministic jitter per (seed, layer, expert, token)
    std::vector<float> z2 = {0.5f, -2.0f, 3.0f, 1.0f};
    rs::steer_logits(z2, std::span(&force, 1), 7, 2, 42);
    EXPECT_EQ(z, z2);

    std::vector<float> s = {0.5f, -2.0f, 3.0f, 1.0f};
    const rs::SteerOp sup{rs::SteerMethod::suppress, 0, 0.75, {2}};
    rs::steer_logits(s, std::span(&sup, 1), 0, 1, 0);
    EXPECT_FLOAT_EQ(s[2], -2.75f);  // min(z) − margin
}

TEST(SteerSpec, CompilesRulesPerBlock) {
    const auto p = plan(R"({"seed": 3, "rules": [
        {"layers": "2:3", "experts": [3, 1, 3], "method": "force"},
        {"layers": "all", "experts": {"5": [0]}, "method": "soft", "lambda": 0.5}]})");
    EXPECT_EQ(p.seed, 3u);
    ASSERT_EQ(p.ops.size(), 6u);
    EXPECT_TRUE(p.ops[1].empty());
    ASSERT_EQ(p.ops[2].size(), 1u);
    EXPECT_EQ(p.ops[2][0].experts, (std::vector<int>{1, 3}));  // sorted, deduplicated
    EXPECT_EQ(p.forced_experts(3), (std::vector<int>{1, 3}));
    ASSERT_EQ(p.ops[5].size(), 1u);
    EXPECT_EQ(p.ops[5][0].method, rs::SteerMethod::soft);
    EXPECT_FALSE(p.empty());
    EXPECT_TRUE(plan(R"({"rules": []})").empty());
}

TEST(SteerSpec, ClearErrors) {
    auto err = [](const std::string & json) {
        try {
            plan(json);
        } catch (const rs::Error & e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_NE(
        err(R"({"rules": [{"layers": "1:9", "experts": [0], "method": "force"}]})").find("out of range"),
        std::string::npos);
    EXPECT_NE(err(R"({"rules": [{"layers": 0, "experts": [0], "method": "force"}]})").find("no router"),
              std::string::npos);
    EXPECT_NE(err(R"({"rules": [{"layers": 1, "experts": [4], "method": "force"}]})").find("expert 4"),
              std::string::npos);
    EXPECT_NE(err(R"({"rules": [{"layers": 1, "experts": [0], "method": "soft"}]})").find("lambda"),
              std::string::npos);
    EXPECT_NE(err(R"({"rules": [{"layers": 1, "experts": [0], "method": "boost"}]})").find("boost"),
              std::string::npos);
    EXPECT_NE(err(R"({"rules": [{"layers": 1, "experts": [], "method": "force"}]})").find("empty"),
              std::string::npos);
    EXPECT_NE(err(R"({"rules": [{"layers": 1, "set": "x", "method": "force"}]})").find("experts_file"),
              std::string::npos);
    EXPECT_NE(err(R"({"rules": [{"layers": "3-4", "experts": [0], "method": "force"}]})").find("a:b"),
              std::string::npos);
    EXPECT_NE(err(R"({"steer": 1})").find("rules"), std::string::npos);
}

// Forcing more experts than top-k is allowed, as in Bandarkar et al. 2025 (Appendix A.6): the jitter ε
// decides which k win, and the plan says so in a warning rather than refusing.
TEST(SteerSpec, ForcingMoreThanTopKWarns) {
    const auto p = plan(R"({"rules": [{"layers": 1, "experts": [0, 1, 2], "method": "force"}]})");
    ASSERT_EQ(p.warnings.size(), 1u);
    EXPECT_NE(p.warnings[0].find("selects 2"), std::string::npos) << p.warnings[0];
    EXPECT_TRUE(p.has_force(1));
    EXPECT_FALSE(p.has_force(2));
    EXPECT_EQ(p.n_steered_experts(), 3);
    EXPECT_TRUE(plan(R"({"rules": [{"layers": 1, "experts": [0, 1], "method": "force"}]})").warnings.empty());
}

TEST(SteerSpec, ExpertSetsFromFile) {
    const auto dir = std::filesystem::path(testing::TempDir()) / "rs_steer_sets";
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "experts.json") << R"({"sets": {"multilingual": {"2": [1, 2], "4": [3]}}})";
    std::ofstream(dir / "spec.json")
        << R"({"experts_file": "experts.json", "rules": [{"layers": "all", "set": "multilingual", "method": "soft", "lambda": 1}]})";
    const auto p = rs::load_steer_plan((dir / "spec.json").string(), model());
    EXPECT_EQ(p.ops[2][0].experts, (std::vector<int>{1, 2}));
    EXPECT_EQ(p.ops[4][0].experts, (std::vector<int>{3}));
    EXPECT_TRUE(p.ops[3].empty());
    std::ofstream(dir / "bad.json")
        << R"({"experts_file": "experts.json", "rules": [{"layers": 1, "set": "nope", "method": "force"}]})";
    EXPECT_THROW(rs::load_steer_plan((dir / "bad.json").string(), model()), rs::Error);
    EXPECT_THROW(rs::load_steer_plan((dir / "missing.json").string(), model()), rs::Error);
}

}  // namespace

// Issue #15: no 64-bit wrap, unknown keys and type errors refused by name, λ and margin bounded.
TEST(SteerSpec, HardenedParsing) {
    auto err = [](const std::string & json) {
        try {
            plan(json);
        } catch (const rs::Error & e) {
            return std::string(e.what());
        } catch (const std::exception & e) {
            return std::string("RAW: ") + e.what();
        }
        return std::string("no error");
    };
    auto has = [&](const std::string & json, const std::string & needle) {
        const auto e = err(json);
        EXPECT_NE(e.find(needle), std::string::npos) << json << " -> " << e;
        EXPECT_EQ(e.find("RAW"), std::string::npos) << e;
    };
    has(R"({"rules": [{"layers": 1, "experts": [4294967299], "method": "force"}]})",
        "expert 4294967299 out of range");
    has(R"({"rules": [{"layers": 4294967297, "experts": [0], "method": "force"}]})",
        "layer 4294967297 out of range");
    has(R"({"rules": [{"layers": "1:4294967297", "experts": [0], "method": "force"}]})", "out of range");
    has(R"({"rules": [{"layers": 1, "experts": [0], "method": "suppress", "margni": 2}]})",
        "unknown key \"margni\"");
    has(R"({"seed": -1, "rules": []})", "seed");
    has(R"({"seed": 1.5, "rules": []})", "seed");
    has(R"({"sed": 1, "rules": []})", "unknown key \"sed\"");
    has(R"({"rules": [{"layers": 1, "experts": [0], "method": "soft", "lambda": 1e300}]})", "lambda");
    has(R"({"rules": [{"layers": 1, "experts": [0], "method": "soft", "lambda": -101}]})", "lambda");
    has(R"({"rules": [{"layers": 1, "experts": [0], "method": "suppress", "margin": 1e30}]})", "margin");
    has(R"({"rules": [{"layers": 1, "experts": [0], "method": "suppress", "margin": "big"}]})", "margin");
    has(R"({"rules": [{"layers": 1, "experts": [0], "method": 3}]})", "method");
    has(R"({"rules": [{"layers": 1, "set": 3, "method": "force"}]})", "set");
    has(R"({"rules": [{"layers": 1, "experts": ["0"], "method": "force"}]})", "integers");
    has(R"({"rules": [{"layers": [1, 1], "experts": [0], "method": "force"}]})", "twice");
    has(R"({"rules": [{"layers": 1, "experts": {"2": [0]}, "method": "force"}]})", "does not target");
    has(R"({"rules": [{"layers": 1, "experts": [0], "method": "force", "lambda": 1}]})", "soft and chen only");
    has(R"({"rules": [3]})", "object");
    has(R"({"experts_file": 3, "rules": []})", "experts_file");
    EXPECT_EQ(plan(R"({"seed": 18446744073709551615, "rules": []})").seed, 18446744073709551615ull);
    EXPECT_EQ(plan(R"({"rules": [{"layers": 1, "experts": [0], "method": "soft", "lambda": 100}]})")
                  .ops[1][0]
                  .lambda,
              100.0);
}

TEST(SteerSpec, BadExpertsFileIsNamed) {
    const auto dir = std::filesystem::path(testing::TempDir()) / "rs_steer_bad_sets";
    std::filesystem::create_directories(dir);
    for (const char * body : {R"({"sets": [1]})", R"({"sets": {"m": [1]}})", R"({"sets": {"m": {"1": "x"}}})",
                              R"({"nosets": 1})", "{ broken"}) {
        std::ofstream(dir / "experts.json") << body;
        std::ofstream(dir / "spec.json")
            << R"({"experts_file": "experts.json", "rules": [{"layers": 1, "set": "m", "method": "force"}]})";
        try {
            rs::load_steer_plan((dir / "spec.json").string(), model());
            ADD_FAILURE() << body;
        } catch (const rs::Error & e) {
            const std::string m = e.what();
            EXPECT_NE(m.find("spec.json"), std::string::npos) << m;
            EXPECT_EQ(m.find("json.exception"), std::string::npos) << m;
        }
    }
}

// Found by rs_fuzz (tests/fuzz/steer/experts-file-directory): a directory opens as an ifstream on Linux
// and its first read threw std::ios_base::failure past every rs::Error handler.
TEST(SteerSpec, ExpertsFileOrSpecThatIsADirectory) {
    const auto dir = std::filesystem::path(testing::TempDir()) / "rs_steer_dir";
    std::filesystem::create_directories(dir / "sub");
    EXPECT_THROW(
        rs::steer_plan_from_json(
            nlohmann::json::parse(
                R"({"experts_file": "sub", "rules": [{"layers": 1, "set": "m", "method": "force"}]})"),
            model(), dir.string()),
        rs::Error);
    EXPECT_THROW(rs::load_steer_plan((dir / "sub").string(), model()), rs::Error);
}

namespace {

// Chen et al.: z_k += λ·s_k·|z_k| (qwen3_moe.py). z = [-2, 1, 3, 0.5], λ = 0.5, s = (0.4 for e0, 0.8 for e2):
// z0 = −2 + 0.5·0.4·2 = −1.6; z2 = 3 + 0.5·0.8·3 = 4.2; the others unchanged. A zero logit stays zero.
TEST(SteerLogits, ChenScalesByShareAndMagnitude) {
    std::vector<float> z = {-2.0f, 1.0f, 3.0f, 0.0f};
    rs::SteerOp op{rs::SteerMethod::chen, 0.5, 1.0, {0, 2, 3}, {0.4, 0.8, 0.9}, {}};
    rs::steer_logits(z, std::span(&op, 1), 0, 1, 0);
    EXPECT_FLOAT_EQ(z[0], -1.6f);
    EXPECT_FLOAT_EQ(z[1], 1.0f);
    EXPECT_FLOAT_EQ(z[2], 4.2f);
    EXPECT_EQ(z[3], 0.0f);
}

// SteerMoE: z = [0, ln 2, ln 3, ln 4] has LSE = ln 10, so log-softmax l = ln([1,2,3,4]/10); activating e0
// gives l0 = ln 0.4 + 0.01 and deactivating e3 gives l3 = ln 0.1 − 0.01 (max and min of the unmodified l).
TEST(SteerLogits, SteerMoeOnTheLogSoftmax) {
    std::vector<float> z = {0.0f, (float)std::log(2.0), (float)std::log(3.0), (float)std::log(4.0)};
    rs::SteerOp op{rs::SteerMethod::steermoe, 0, 1.0, {0}, {}, {3}};
    rs::steer_logits(z, std::span(&op, 1), 0, 1, 0);
    EXPECT_NEAR(z[0], std::log(0.4) + 0.01, 1e-6);
    EXPECT_NEAR(z[1], std::log(0.2), 1e-6);
    EXPECT_NEAR(z[2], std::log(0.3), 1e-6);
    EXPECT_NEAR(z[3], std::log(0.1) - 0.01, 1e-6);
    // one expert only, activated: l = 0 → 0.01
    std::vector<float> one = {5.0f};
    rs::SteerOp only{rs::SteerMethod::steermoe, 0, 1.0, {0}, {}, {}};
    rs::steer_logits(one, std::span(&only, 1), 0, 1, 0);
    EXPECT_NEAR(one[0], 0.01, 1e-7);
}

TEST(SteerSpec, ChenAndSteerMoeRules) {
    const auto dir = std::filesystem::path(testing::TempDir()) / "rs_steer_chen";
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "experts.json") << R"({"sets": {"shared": {"1": [0, 2], "2": [3]},
        "activate": {"1": [1]}, "deactivate": {"1": [2], "3": [0]}},
        "coefficients": {"1": {"0": 0.25, "2": 0.5}, "2": {"3": 0.75}}})";
    const auto p =
        rs::steer_plan_from_json(nlohmann::json::parse(R"({"experts_file": "experts.json", "rules": [
        {"layers": "1:2", "set": "shared", "method": "chen", "lambda": 0.02},
        {"layers": "all", "set": "activate", "deactivate_set": "deactivate", "method": "steermoe"}]})"),
                                 model(), dir.string());
    ASSERT_EQ(p.ops[1].size(), 2u);
    EXPECT_EQ(p.ops[1][0].method, rs::SteerMethod::chen);
    EXPECT_EQ(p.ops[1][0].experts, (std::vector<int>{0, 2}));
    EXPECT_EQ(p.ops[1][0].coef, (std::vector<double>{0.25, 0.5}));
    EXPECT_EQ(p.ops[2][0].coef, (std::vector<double>{0.75}));
    EXPECT_EQ(p.ops[1][1].experts, (std::vector<int>{1}));
    EXPECT_EQ(p.ops[1][1].off, (std::vector<int>{2}));
    ASSERT_EQ(p.ops[3].size(), 1u);  // deactivation only
    EXPECT_TRUE(p.ops[3][0].experts.empty());
    EXPECT_EQ(p.ops[3][0].off, (std::vector<int>{0}));
    EXPECT_TRUE(p.ops[4].empty());
    EXPECT_EQ(p.n_steered_experts(), 3 + 1 + 1);  // block 1: {0, 1, 2}; block 2: {3}; block 3: {0}
    EXPECT_TRUE(p.forced_experts(1).empty());     // steermoe edits the logits only, as the authors' code
    // inline coefficients name the experts
    const auto q = plan(R"({"rules": [{"layers": [3], "method": "chen", "lambda": 0.03,
                                       "coefficients": {"3": {"2": 0.6, "0": 0.1}}}]})");
    EXPECT_EQ(q.ops[3][0].experts, (std::vector<int>{0, 2}));
    EXPECT_EQ(q.ops[3][0].coef, (std::vector<double>{0.1, 0.6}));
    auto err = [&](const std::string & spec) {
        try {
            rs::steer_plan_from_json(nlohmann::json::parse(spec), model(), dir.string());
        } catch (const rs::Error & e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_NE(err(R"({"rules": [{"layers": 1, "experts": [0], "method": "chen"}]})").find("needs a numeric"),
              std::string::npos);
    EXPECT_NE(err(R"({"rules": [{"layers": 1, "experts": [0], "method": "chen", "lambda": 0.1}]})")
                  .find("no coefficient"),
              std::string::npos);
    EXPECT_NE(err(R"({"experts_file": "experts.json", "rules": [{"layers": 1, "set": "activate",
                      "method": "chen", "lambda": 0.1}]})")
                  .find("expert 1 of block 1 has no coefficient"),
              std::string::npos);
    EXPECT_NE(err(R"({"rules": [{"layers": 1, "method": "chen", "lambda": 0.1,
                      "coefficients": {"1": {"x": 0.5}}}]})")
                  .find("not an expert id"),
              std::string::npos);
    EXPECT_NE(err(R"({"rules": [{"layers": 1, "method": "chen", "lambda": 0.1,
                      "coefficients": {"1": {"9": 0.5}}}]})")
                  .find("out of range"),
              std::string::npos);
    EXPECT_NE(err(R"({"rules": [{"layers": 1, "experts": [0], "deactivate": [0], "method": "steermoe"}]})")
                  .find("both activated and deactivated"),
              std::string::npos);
    EXPECT_NE(err(R"({"rules": [{"layers": 1, "experts": [0], "deactivate": [1], "method": "force"}]})")
                  .find("steermoe only"),
              std::string::npos);
    EXPECT_NE(err(R"({"rules": [{"layers": 1, "method": "steermoe"}]})").find("give \"experts\" or \"set\""),
              std::string::npos);
    EXPECT_NE(err(R"({"rules": [{"layers": 1, "experts": [0], "method": "steermoe", "lambda": 1}]})")
                  .find("soft and chen only"),
              std::string::npos);
}

}  // namespace
