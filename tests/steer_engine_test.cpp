// Steering on real llama.cpp inference, every generated architecture: force ⇒ the expert is selected
// for every token of the targeted blocks, suppress ⇒ never, soft ⇒ the router sees exactly
// z + λ·std(z), blocks before the first targeted one are untouched, an empty spec is a no-op.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "routescope/corpus.h"
#include "routescope/engine.h"
#include "routescope/steer.h"
#include "test_util.h"

namespace {

using rs::test::tiny_model;

struct Fixture {
    std::unique_ptr<rs::Engine> eng;
    std::vector<std::vector<int32_t>> toks;
};

Fixture make(const std::string & arch) {
    Fixture f;
    rs::EngineParams ep;
    ep.n_threads = 1;
    ep.n_batch = 1024;
    f.eng = std::make_unique<rs::Engine>(tiny_model(arch), ep);
    const auto c = rs::load_corpus(rs::test::flores_devtest(), {{"eng_Latn", "jpn_Jpan", "swh_Latn"}, 3});
    for (const auto & s : c.seqs) f.toks.push_back(f.eng->tokenize(s.text, 64));
    return f;
}

rs::SteerPlan plan(const rs::Engine & e, const std::string & json) {
    return rs::steer_plan_from_json(nlohmann::json::parse(json), e.info(), ".");
}

class SteerArch : public testing::TestWithParam<std::string> {};

TEST_P(SteerArch, ForceAndSuppressControlSelection) {
    auto f = make(GetParam());
    const auto & mi = f.eng->info();
    const int L = (int)mi.moe_layers.size(), E = mi.n_expert, K = mi.top_k;
    const int first = mi.moe_layers[1], last = mi.moe_layers[2];  // steer the 2nd and 3rd MoE blocks
    const auto base = f.eng->record(f.toks);
    for (const char * method : {"force", "suppress"}) {
        const int target = 5;
        f.eng->set_steering(plan(
            *f.eng,
            fmt::format(R"({{"seed": 1, "rules": [{{"layers": "{}:{}", "experts": [{}], "method": "{}"}}]}})",
                        first, last, target, method)));
        const auto st = f.eng->record(f.toks);
        f.eng->set_steering({});
        for (size_t s = 0; s < st.size(); ++s)
            for (size_t t = 0; t < f.toks[s].size(); ++t)
                for (int l = 0; l < L; ++l) {
                    const int16_t * ids = &st[s].topk[(t * L + l) * K];
                    const bool has = std::find(ids, ids + K, target) != ids + K;
                    const int il = mi.moe_layers[l];
                    if (il >= first && il <= last) {
                        ASSERT_EQ(has, std::string(method) == "force")
                            << method << " block " << il << " token " << t;
                    } else if (il < first) {  // upstream of the intervention: bit-identical routing
                        ASSERT_EQ(0, std::memcmp(&st[s].logits[(t * L + l) * E],
                                                 &base[s].logits[(t * L + l) * E], sizeof(float) * E));
                        ASSERT_TRUE(std::equal(ids, ids + K, &base[s].topk[(t * L + l) * K]));
                    }
                }
    }
}

TEST_P(SteerArch, SoftShiftsByLambdaStd) {
    auto f = make(GetParam());
    const auto & mi = f.eng->info();
    const int L = (int)mi.moe_layers.size(), E = mi.n_expert;
    const int il = mi.moe_layers[1], slot = 1;
    const double lambda = 0.75;
    const auto base = f.eng->record(f.toks);
    f.eng->set_steering(plan(
        *f.eng,
        fmt::format(R"({{"rules": [{{"layers": {}, "experts": [2, 6], "method": "soft", "lambda": {}}}]}})",
                    il, lambda)));
    const auto st = f.eng->record(f.toks);
    for (size_t s = 0; s < st.size(); ++s)
        for (size_t t = 0; t < f.toks[s].size(); ++t) {
            const float * z0 = &base[s].logits[(t * L + slot) * E];  // the unsteered router input
            const float * z1 = &st[s].logits[(t * L + slot) * E];    // what the router saw when steered
            double mean = 0, var = 0;
            for (int e = 0; e < E; ++e) mean += z0[e] / E;
            for (int e = 0; e < E; ++e) var += (z0[e] - mean) * (z0[e] - mean) / E;
            for (int e = 0; e < E; ++e) {
                const double want = z0[e] + ((e == 2 || e == 6) ? lambda * std::sqrt(var) : 0.0);
                ASSERT_NEAR(z1[e], want, 1e-5 * (1 + std::fabs(want))) << "token " << t << " expert " << e;
            }
        }
}

// The authors' two rules on what the router sees, against formulas computed here from the unsteered input:
// chen z_e + λ·s_e·|z_e| (Chen et al.), steermoe the log-softmax with max + 0.01 / min − 0.01 (SteerMoE).
TEST_P(SteerArch, ChenAndSteerMoeTransformTheRoutersInput) {
    auto f = make(GetParam());
    const auto & mi = f.eng->info();
    const int L = (int)mi.moe_layers.size(), E = mi.n_expert;
    const int il = mi.moe_layers[1], slot = 1;
    const auto base = f.eng->record(f.toks);
    for (const bool chen : {true, false}) {
        f.eng->set_steering(
            plan(*f.eng, chen ? fmt::format(R"({{"rules": [{{"layers": {}, "method": "chen", "lambda": 0.5,
                                                       "coefficients": {{"{}": {{"2": 0.5, "6": 0.25}}}}}}]}})",
                                            il, il)
                              : fmt::format(R"({{"rules": [{{"layers": {}, "experts": [2], "deactivate": [6],
                                                       "method": "steermoe"}}]}})",
                                            il)));
        const auto st = f.eng->record(f.toks);
        f.eng->set_steering({});
        for (size_t s = 0; s < st.size(); ++s)
            for (size_t t = 0; t < f.toks[s].size(); ++t) {
                const float * z0 = &base[s].logits[(t * L + slot) * E];
                const float * z1 = &st[s].logits[(t * L + slot) * E];
                std::vector<double> want(z0, z0 + E);
                if (chen) {
                    want[2] += 0.5 * 0.5 * std::fabs(want[2]);
                    want[6] += 0.5 * 0.25 * std::fabs(want[6]);
                } else {
                    double lse = 0;
                    for (double v : want) lse += std::exp(v);
                    lse = std::log(lse);
                    for (double & v : want) v -= lse;
                    const double hi = *std::max_element(want.begin(), want.end());
                    const double lo = *std::min_element(want.begin(), want.end());
                    want[2] = hi + 0.01, want[6] = lo - 0.01;
                }
                for (int e = 0; e < E; ++e)
                    ASSERT_NEAR(z1[e], want[e], 1e-5 * (1 + std::fabs(want[e])))
                        << (chen ? "chen" : "steermoe") << " token " << t << " expert " << e;
            }
    }
}

TEST_P(SteerArch, EmptySpecIsBitIdentical) {
    auto f = make(GetParam());
    const auto a = f.eng->output_logits(f.toks);
    f.eng->set_steering(plan(*f.eng, R"({"rules": []})"));
    const auto b = f.eng->output_logits(f.toks);
    for (size_t s = 0; s < a.size(); ++s)
        ASSERT_EQ(0, std::memcmp(a[s].data(), b[s].data(), a[s].size() * 4));
}

INSTANTIATE_TEST_SUITE_P(AllArchs, SteerArch, testing::ValuesIn(rs::make_model_archs()),
                         [](const auto & param_info) {
                             std::string n = param_info.param;
                             std::replace(n.begin(), n.end(), '-', '_');
                             return n;
                         });

}  // namespace
