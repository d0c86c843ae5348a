// Architecture conformance: every MoE architecture of llama.cpp v0.5.0 (make-model --list-archs),
// plus the variants that change how routing is computed or stored (MTP/nextn blocks, selection bias
// with expert groups, hash layers, interleaving, f16/bf16 routers, Q8_0 and Q4_K_M weights), is
// either recorded right or refused by name with a one-line error. "Right" means, on real FLoRes
// text through real llama.cpp inference:
//   - token accounting: one row of logits and ids per token and recorded MoE layer (Engine::record
//     throws otherwise), all logits finite;
//   - the recorded ids are the model's selection: distinct, in range, and a top-k of the selection
//     scores recomputed independently here from the recorded logits and the gating the graph applies
//     (softmax / sigmoid / sqrt-softplus, + the file's exp_probs_b, group-limited selection); in hash
//     layers the ids are a function of the token alone;
//   - the tap leaves the output logits bit-identical;
//   - the same sentence gets the same routing in one batch with others and alone;
//   - steering (force) selects the forced expert for every token and does not crash, in recording
//     and in generation.
// The README's architecture table is checked against the refusal list below.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <numeric>
#include <set>

#include <fmt/format.h>

#include "ggml.h"
#include "gguf.h"
#include "routescope/common.h"
#include "routescope/corpus.h"
#include "routescope/engine.h"
#include "routescope/make_model.h"
#include "routescope/record.h"
#include "routescope/steer.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;

// Architectures routescope refuses, and the words of the refusal (README, "Architectures").
const std::map<std::string, std::string> & refused() {
    static const std::map<std::string, std::string> r = {
        {"ernie4_5", "not a Mixture-of-Experts model"},   // expert keys, no router tensors
        {"paddleocr", "not a Mixture-of-Experts model"},  // idem
        {"refact", "runs none of the file's routers"},    // router tensors its graph never uses
    };
    return r;
}

struct Variant {
    std::string name;
    rs::MakeModelParams p;
    std::string quantize;  // "", "Q8_0", "Q4_K_M"
};

void PrintTo(const Variant & v, std::ostream * os) {
    *os << v.name;
}

std::vector<Variant> variants() {
    std::vector<Variant> v;
    auto base = [](const std::string & arch) {
        rs::MakeModelParams p;
        p.arch = arch;
        p.n_layer = 4;
        p.n_expert = 8;
        p.top_k = 2;
        p.stdev = 0.1f;  // well-conditioned; 0.2 makes tiny models chaotic
        return p;
    };
    for (const auto & a : rs::make_model_all_archs()) v.push_back({a, base(a), ""});
    auto add = [&](const std::string & name, const std::string & arch, auto && edit, std::string q = "") {
        auto p = base(arch);
        edit(p);
        v.push_back({name, p, q});
    };
    // DeepSeek-V3 routing: sigmoid + a random selection bias + group-limited selection
    add("glm4moe_bias_groups", "glm4moe", [](auto & p) {
        p.selection_bias = true;
        p.n_group = 4;
        p.n_group_used = 2;
    });
    add("dots1_bias", "dots1", [](auto & p) { p.selection_bias = true; });
    add("glm4moe_mtp", "glm4moe", [](auto & p) { p.nextn = 1; });
    add("qwen3next_mtp", "qwen3next", [](auto & p) { p.nextn = 1; });
    add("deepseek4_hash", "deepseek4", [](auto & p) { p.hash_layers = 1; });
    add("llama4_interleaved", "llama4", [](auto & p) { p.moe_step = 2; });
    add("bailingmoe2_dense_lead2", "bailingmoe2", [](auto & p) { p.dense_lead = 2; });
    add("qwen3moe_router_f16", "qwen3moe", [](auto & p) { p.router_type = "f16"; });
    add("glm4moe_router_bf16", "glm4moe", [](auto & p) { p.router_type = "bf16"; });
    add(
        "qwen3moe_q8_0", "qwen3moe", [](auto &) {}, "Q8_0");
    add(
        "deepseek2_q4_k_m", "deepseek2", [](auto & p) { p.router_type = "f16"; }, "Q4_K_M");
    add(
        "jamba_q8_0", "jamba", [](auto &) {}, "Q8_0");
    return v;
}

std::string model_file(const Variant & v) {
    const fs::path p = fs::path(testing::TempDir()) / ("rs_conf_" + v.name + ".gguf");
    if (!fs::exists(p)) {
        if (v.quantize.empty()) {
            rs::make_model(v.p, p.string());
        } else {
            const fs::path f = p.string() + ".f32.gguf";
            rs::make_model(v.p, f.string());
            rs::quantize_model(f.string(), p.string(), v.quantize);
            fs::remove(f);
        }
    }
    return p.string();
}

// An f32 tensor of the GGUF file, or empty when absent.
std::vector<float> f32_tensor(const std::string & path, const std::string & name) {
    ggml_context * ctx = nullptr;
    gguf_init_params gp = {/*no_alloc*/ false, &ctx};
    gguf_context * g = gguf_init_from_file(path.c_str(), gp);
    EXPECT_NE(g, nullptr);
    std::vector<float> out;
    if (ggml_tensor * t = ctx ? ggml_get_tensor(ctx, name.c_str()) : nullptr) {
        EXPECT_EQ(t->type, GGML_TYPE_F32) << name;
        if (t->type == GGML_TYPE_F32) out.assign((float *)t->data, (float *)t->data + ggml_nelements(t));
    }
    if (ctx) ggml_free(ctx);
    if (g) gguf_free(g);
    return out;
}

// Selection scores of one token from its router logits, as build_moe_ffn (llama-graph.cpp) computes
// them: the gating function, + the selection bias, then group-limited masking (the sum of the two
// best scores of each group ranks the groups; the n_group_used best survive).
std::vector<double> selection_scores(const float * z, int E, const std::string & gating, const float * bias,
                                     int n_group, int n_group_used) {
    std::vector<double> s(E);
    const bool sigmoid_sel = gating.find("sigmoid") != std::string::npos;  // sigmoid, or grovemoe's selection
    double zmax = z[0];
    for (int e = 1; e < E; ++e) zmax = std::max(zmax, (double)z[e]);
    double sum = 0;
    for (int e = 0; e < E; ++e) sum += std::exp(z[e] - zmax);
    for (int e = 0; e < E; ++e) {
        if (gating.rfind("sqrt_softplus", 0) == 0)
            s[e] = std::sqrt(std::log1p(std::exp((double)z[e])));
        else if (sigmoid_sel)
            s[e] = 1.0 / (1.0 + std::exp(-(double)z[e]));
        else if (gating.rfind("softmax_topk", 0) == 0)
            s[e] = z[e];
        else
            s[e] = std::exp(z[e] - zmax) / sum;
        if (bias) s[e] += bias[e];
    }
    if (gating.find("+groups") != std::string::npos && n_group > 1) {
        const int per = E / n_group;
        std::vector<std::pair<double, int>> gs;
        for (int g = 0; g < n_group; ++g) {
            std::vector<double> v(s.begin() + g * per, s.begin() + (g + 1) * per);
            std::sort(v.rbegin(), v.rend());
            gs.push_back({v[0] + (per > 1 ? v[1] : 0.0), g});
        }
        std::sort(gs.rbegin(), gs.rend());
        for (int r = n_group_used; r < n_group; ++r)
            for (int e = 0; e < per; ++e) s[gs[r].second * per + e] = -INFINITY;
    }
    return s;
}

std::vector<std::vector<int32_t>> flores_tokens(const rs::Engine & e) {
    const auto c = rs::load_corpus(rs::test::flores_devtest(), {{"eng_Latn", "zho_Hans", "swh_Latn"}, 3});
    std::vector<std::vector<int32_t>> out;
    for (const auto & s : c.seqs) out.push_back(e.tokenize(s.text, 48));
    return out;
}

std::unique_ptr<rs::Engine> engine(const std::string & model, bool tap = true, bool stops_early = true) {
    rs::EngineParams ep;
    ep.n_threads = 1;
    ep.n_batch = 1024;
    ep.n_ctx = 2048;
    ep.tap = tap;
    ep.record_stops_early = stops_early;
    return std::make_unique<rs::Engine>(model, ep);
}

class Conformance : public testing::TestWithParam<Variant> {};

TEST_P(Conformance, RecordedRightOrRefused) {
    const Variant & v = GetParam();
    const std::string model = model_file(v);
    const auto want_refusal = refused().find(v.p.arch);
    std::unique_ptr<rs::Engine> eng;
    try {
        eng = engine(model);
    } catch (const rs::Error & e) {
        ASSERT_NE(want_refusal, refused().end()) << v.name << " refused unexpectedly: " << e.what();
        EXPECT_NE(std::string(e.what()).find(want_refusal->second), std::string::npos) << e.what();
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line: " << e.what();
        return;
    }
    ASSERT_EQ(want_refusal, refused().end()) << v.name << " should be refused but loads";
    const auto & mi = eng->info();
    const int L = (int)mi.moe_layers.size(), E = mi.n_expert, K = mi.top_k;
    ASSERT_GT(L, 0);
    EXPECT_EQ(mi.gating.find("unknown"), std::string::npos) << v.name << ": " << mi.gating;
    EXPECT_EQ(mi.gating.find('|'), std::string::npos) << v.name << ": layers gate differently: " << mi.gating;
    if (v.p.nextn > 0) {
        EXPECT_LT(mi.moe_layers.back(), mi.n_layer - v.p.nextn) << "an MTP block is recorded";
    }
    if (v.p.hash_layers > 0) {
        EXPECT_EQ(mi.hash_layers, std::vector<int>{0}) << v.name;
    }

    const auto toks = flores_tokens(*eng);
    const auto recs = eng->record(toks);  // throws on a token-accounting or column-mapping error
    ASSERT_EQ(recs.size(), toks.size());

    // selection bias per recorded layer (the file's exp_probs_b; hy_v3 names it without ".bias")
    std::vector<std::vector<float>> bias(L);
    if (mi.gating.find("+bias") != std::string::npos)
        for (int l = 0; l < L; ++l) {
            if (std::count(mi.hash_layers.begin(), mi.hash_layers.end(), mi.moe_layers[l])) continue;
            bias[l] = f32_tensor(model, fmt::format("blk.{}.exp_probs_b.bias", mi.moe_layers[l]));
            if (bias[l].empty())
                bias[l] = f32_tensor(model, fmt::format("blk.{}.exp_probs_b", mi.moe_layers[l]));
            ASSERT_EQ((int)bias[l].size(), E) << "layer " << mi.moe_layers[l];
        }
    std::map<std::pair<int, int32_t>, std::vector<int16_t>> hash_ids;  // (slot, token) → ids
    for (size_t s = 0; s < recs.size(); ++s) {
        const auto & r = recs[s];
        const size_t T = toks[s].size();
        ASSERT_EQ(r.logits.size(), T * L * E);
        ASSERT_EQ(r.topk.size(), T * L * K);
        for (size_t t = 0; t < T; ++t)
            for (int l = 0; l < L; ++l) {
                const float * z = &r.logits[(t * L + l) * E];
                const int16_t * ids = &r.topk[(t * L + l) * K];
                for (int e = 0; e < E; ++e) ASSERT_TRUE(std::isfinite(z[e])) << v.name;
                std::set<int> sel(ids, ids + K);
                ASSERT_EQ((int)sel.size(), K) << v.name << ": repeated ids";
                ASSERT_GE(*sel.begin(), 0);
                ASSERT_LT(*sel.rbegin(), E);
                const bool hash = std::find(mi.hash_layers.begin(), mi.hash_layers.end(), mi.moe_layers[l]) !=
                                  mi.hash_layers.end();
                if (hash) {  // ids come from a token table: the same token always gets the same ids
                    const auto key = std::make_pair(l, toks[s][t]);
                    const std::vector<int16_t> got(ids, ids + K);
                    const auto [it, fresh] = hash_ids.emplace(key, got);
                    if (!fresh) {
                        ASSERT_EQ(it->second, got) << v.name << " token " << toks[s][t];
                    }
                    continue;
                }
                const auto sc = selection_scores(z, E, mi.gating, bias[l].empty() ? nullptr : bias[l].data(),
                                                 mi.n_group, mi.n_group_used);
                double lo = INFINITY, hi = -INFINITY;  // worst selected vs best unselected
                for (int e = 0; e < E; ++e) {
                    if (sel.count(e))
                        lo = std::min(lo, sc[e]);
                    else
                        hi = std::max(hi, sc[e]);
                }
                ASSERT_GE(lo, hi - 1e-5 * (1 + std::fabs(hi)))
                    << v.name << " seq " << s << " token " << t << " slot " << l << ": ids are not a top-"
                    << K << " of the " << mi.gating << " scores";
            }
    }

    // batch invariance: each sequence alone gives the same ids (quantised weights: see the README bound)
    size_t rows = 0, flipped = 0;
    double max_dp = 0;
    std::vector<float> pa(E), pb(E);
    for (size_t s = 0; s < toks.size(); ++s) {
        const auto alone = eng->record(std::span(&toks[s], 1))[0];
        for (size_t row = 0; row < alone.topk.size() / K; ++row) {
            std::set<int> a(&recs[s].topk[row * K], &recs[s].topk[row * K] + K);
            std::set<int> b(&alone.topk[row * K], &alone.topk[row * K] + K);
            ++rows;
            flipped += a != b;
            rs::routing_softmax(&recs[s].logits[row * E], pa.data(), E);
            rs::routing_softmax(&alone.logits[row * E], pb.data(), E);
            for (int e = 0; e < E; ++e) max_dp = std::max(max_dp, (double)std::fabs(pa[e] - pb[e]));
        }
    }
    if (v.quantize.empty() && v.p.arch != "phimoe") {
        EXPECT_EQ(flipped, 0u) << v.name << ": " << flipped << " of " << rows << " rows change with packing";
        EXPECT_LT(max_dp, 1e-3) << v.name;
    } else {  // README, "Batch packing": quantised activations amplify rounding into rare flips
        EXPECT_LE(flipped * 100, rows) << v.name << ": more than 1% of rows change with packing";
    }
    std::printf("[ packing ] %s: %zu of %zu rows flipped, max |dp| %.3g\n", v.name.c_str(), flipped, rows,
                max_dp);

    // record() stops each graph after the last router (issue #11): the whole graph records the same bytes
    {
        auto whole = engine(model, /*tap*/ true, /*stops_early*/ false);
        const auto w = whole->record(toks);
        for (size_t s = 0; s < toks.size(); ++s) {
            ASSERT_EQ(w[s].topk, recs[s].topk) << v.name << " sequence " << s;
            ASSERT_EQ(w[s].logits.size(), recs[s].logits.size());
            EXPECT_EQ(
                0, std::memcmp(w[s].logits.data(), recs[s].logits.data(), w[s].logits.size() * sizeof(float)))
                << v.name << " sequence " << s;
        }
    }

    // the tap is invisible
    auto plain = engine(model, /*tap*/ false);
    const std::vector<std::vector<int32_t>> two(toks.begin(), toks.begin() + 2);
    const auto a = eng->output_logits(two, {}, /*record_routing*/ true);
    const auto b = plain->output_logits(two);
    for (size_t s = 0; s < a.size(); ++s) {
        ASSERT_EQ(a[s].size(), b[s].size());
        EXPECT_EQ(0, std::memcmp(a[s].data(), b[s].data(), a[s].size() * sizeof(float))) << v.name;
    }

    // steering: force expert 5 in the last recorded layer (not a hash layer) while recording and
    // while generating with several sequences in flight
    const int last = mi.moe_layers.back();
    eng->set_steering(rs::steer_plan_from_json(
        nlohmann::json::parse(fmt::format(
            R"({{"seed": 1, "rules": [{{"layers": "{}:{}", "experts": [5], "method": "force"}}]}})", last,
            last)),
        mi, "."));
    const auto st = eng->record(toks);
    for (size_t s = 0; s < st.size(); ++s)
        for (size_t t = 0; t < toks[s].size(); ++t) {
            const int16_t * ids = &st[s].topk[(t * L + L - 1) * K];
            ASSERT_NE(std::find(ids, ids + K, 5), ids + K) << v.name << ": forced expert not selected";
        }
    rs::GenerateParams gp;
    gp.max_new_tokens = 3;
    const auto gen = eng->generate(std::span(toks).subspan(0, 4), gp);
    EXPECT_EQ(gen.size(), 4u);
}

INSTANTIATE_TEST_SUITE_P(AllArchs, Conformance, testing::ValuesIn(variants()), [](const auto & param_info) {
    std::string n = param_info.param.name;
    std::replace(n.begin(), n.end(), '-', '_');
    return n;
});

// The README's table lists every architecture once, with the status this test enforces.
TEST(Conformance, ReadmeTableMatches) {
    std::ifstream f(std::string(RS_SOURCE_DIR) + "/README.md");
    ASSERT_TRUE(f) << "README.md";
    std::map<std::string, std::string> status;  // arch → "recorded" | "refused"
    std::string line;
    bool in_table = false;
    while (std::getline(f, line)) {
        if (line.find("<!-- architectures:begin -->") != std::string::npos) in_table = true;
        if (line.find("<!-- architectures:end -->") != std::string::npos) in_table = false;
        if (!in_table || line.rfind("| `", 0) != 0) continue;
        const auto a0 = line.find('`') + 1, a1 = line.find('`', a0);
        const std::string arch = line.substr(a0, a1 - a0);
        const auto c0 = line.find('|', a1) + 1, c1 = line.find('|', c0);
        std::string st = line.substr(c0, c1 - c0);
        st.erase(0, st.find_first_not_of(' '));
        st.erase(st.find_last_not_of(' ') + 1);
        EXPECT_TRUE(status.emplace(arch, st).second) << arch << " listed twice";
    }
    for (const auto & a : rs::make_model_all_archs()) {
        ASSERT_TRUE(status.count(a)) << "README architecture table lacks " << a;
        EXPECT_EQ(status[a].rfind(refused().count(a) ? "refused" : "recorded", 0), 0u)
            << a << ": " << status[a];
    }
    EXPECT_EQ(status.size(), rs::make_model_all_archs().size());
}

}  // namespace
