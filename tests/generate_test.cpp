// The evaluation side of the engine on real llama.cpp inference: output logits at chosen positions
// (the last block is then pruned to the outputs) and greedy generation with continuous batching,
// both checked against the all-outputs decode, with and without steering.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "routescope/common.h"
#include "routescope/corpus.h"
#include "routescope/engine.h"
#include "routescope/steer.h"
#include "test_util.h"

namespace {

using rs::test::tiny_model;

std::vector<std::vector<int32_t>> flores_prompts(const rs::Engine & e, int n_groups, int max_tokens) {
    const auto c =
        rs::load_corpus(rs::test::flores_devtest(), {{"eng_Latn", "deu_Latn", "hin_Deva"}, n_groups});
    std::vector<std::vector<int32_t>> out;
    for (const auto & s : c.seqs) out.push_back(e.tokenize(s.text, max_tokens));
    return out;
}

rs::EngineParams params(int n_ctx = 0) {
    rs::EngineParams ep;
    ep.n_threads = 1;
    ep.n_batch = 512;
    ep.n_ctx = n_ctx;
    ep.n_seq_max = 8;
    return ep;
}

float max_abs_diff(const float * a, const float * b, size_t n) {
    float d = 0;
    for (size_t i = 0; i < n; ++i) d = std::max(d, std::fabs(a[i] - b[i]));
    return d;
}

// Reference greedy decoding: re-decode prompt + generated text from scratch for every new token and
// take the argmax of the last row (no KV reuse, no batching across prompts).
std::vector<int32_t> greedy_reference(rs::Engine & e, std::vector<int32_t> toks, int n_new) {
    std::vector<int32_t> gen;
    for (int i = 0; i < n_new; ++i) {
        const std::vector<std::vector<int32_t>> seqs{toks};
        const std::vector<std::vector<int32_t>> pos{{(int32_t)toks.size() - 1}};
        const auto rows = e.output_logits(seqs, pos);
        const int32_t tok = (int32_t)(std::max_element(rows[0].begin(), rows[0].end()) - rows[0].begin());
        gen.push_back(tok);
        toks.push_back(tok);
    }
    return gen;
}

class GenerateArch : public testing::TestWithParam<std::string> {};

// Rows at chosen positions equal the same rows of the all-outputs decode, also when the last MoE block
// is steered (its router then sees only the output columns, which the tap must map to their tokens).
TEST_P(GenerateArch, LogitsAtPositionsMatchAllOutputs) {
    rs::Engine e(tiny_model(GetParam()), params());
    const auto seqs = flores_prompts(e, 2, 48);
    std::vector<std::vector<int32_t>> pos;
    for (const auto & s : seqs) pos.push_back({0, (int32_t)s.size() / 2, (int32_t)s.size() - 1});
    const size_t V = (size_t)e.n_vocab();
    const int last = e.info().moe_layers.back();
    for (const bool steered : {false, true}) {
        e.set_steering(
            steered ? rs::steer_plan_from_json(
                          nlohmann::json::parse(fmt::format(
                              R"({{"rules": [{{"layers": {}, "experts": [1], "method": "soft", "lambda": 2}},
                                              {{"layers": {}, "experts": [3], "method": "force"}}]}})",
                              last, last)),
                          e.info(), ".")
                    : rs::SteerPlan{});
        const auto all = e.output_logits(seqs);
        const auto some = e.output_logits(seqs, pos);
        // steering without recording (eval: only steered blocks asked) = steering while recording (trace)
        const auto recorded = e.output_logits(seqs, {}, /*record_routing*/ true);
        for (size_t s = 0; s < seqs.size(); ++s)
            ASSERT_EQ(0, std::memcmp(all[s].data(), recorded[s].data(), all[s].size() * sizeof(float)))
                << "steered " << steered << " sequence " << s;
        for (size_t s = 0; s < seqs.size(); ++s) {
            ASSERT_EQ(some[s].size(), 3 * V);
            for (size_t r = 0; r < 3; ++r)
                EXPECT_LT(max_abs_diff(&some[s][r * V], &all[s][(size_t)pos[s][r] * V], V), 1e-3f)
                    << "steered " << steered << " sequence " << s << " position " << pos[s][r];
        }
    }
    const std::vector<std::vector<int32_t>> bad(seqs.size(), std::vector<int32_t>{999});
    EXPECT_THROW(e.output_logits(seqs, bad), rs::Error);
}

// Continuous batching with a KV cache that holds one or two sequences at a time, or all of them, gives
// the tokens of the reference greedy decoding.
TEST_P(GenerateArch, GreedyMatchesReferenceAndBatching) {
    const int n_new = 6;
    rs::Engine wide(tiny_model(GetParam()), params(2048));
    const auto prompts = flores_prompts(wide, 1, 40);
    rs::GenerateParams gp;
    gp.max_new_tokens = n_new;
    std::vector<size_t> order;
    const auto a = wide.generate(prompts, gp, [&](size_t i, const rs::Generation &) { order.push_back(i); });
    ASSERT_EQ(a.size(), prompts.size());
    std::sort(order.begin(), order.end());
    EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2}));  // on_done once per prompt

    rs::Engine narrow(tiny_model(GetParam()), params(512));  // 512 cells: one or two prompts at a time
    const auto b = narrow.generate(prompts, gp);
    for (size_t i = 0; i < prompts.size(); ++i) {
        const auto ref = greedy_reference(wide, prompts[i], n_new);
        EXPECT_EQ(a[i].tokens, b[i].tokens) << "prompt " << i;
        EXPECT_EQ(a[i].text, b[i].text) << "prompt " << i;
        ASSERT_EQ(a[i].n_tokens, (int)a[i].tokens.size());
        if (a[i].stop == rs::Generation::Stop::eos) {
            EXPECT_LT(a[i].n_tokens, n_new);
        } else {
            EXPECT_EQ(a[i].stop, rs::Generation::Stop::length);
            EXPECT_EQ(a[i].n_tokens, n_new);
        }
        EXPECT_EQ(a[i].tokens, std::vector<int32_t>(ref.begin(), ref.begin() + a[i].n_tokens))
            << "prompt " << i;
    }
}

// A stop string ends generation as soon as the text contains it (here: the first generated piece).
TEST_P(GenerateArch, StopString) {
    rs::Engine e(tiny_model(GetParam()), params(2048));
    const auto prompts = flores_prompts(e, 1, 32);
    rs::GenerateParams gp;
    gp.max_new_tokens = 4;
    const auto free_run = e.generate(prompts, gp);
    for (size_t i = 0; i < prompts.size(); ++i) {
        if (free_run[i].text.empty()) continue;  // an EOS first: nothing to stop on
        rs::GenerateParams stop = gp;
        stop.stops = {"\x01never", free_run[i].text.substr(0, 1)};
        const std::vector<std::vector<int32_t>> one{prompts[i]};
        const auto g = e.generate(one, stop);
        EXPECT_EQ(g[0].stop, rs::Generation::Stop::stop_string);
        EXPECT_EQ(g[0].n_tokens, 1);
        EXPECT_EQ(g[0].text, free_run[i].text.substr(0, g[0].text.size()));
    }
}

TEST(Generate, PromptThatCannotFitIsAClearError) {
    rs::Engine e(tiny_model("olmoe"), params(512));
    std::vector<std::vector<int32_t>> prompts{std::vector<int32_t>(500, 5)};
    rs::GenerateParams gp;
    gp.max_new_tokens = 64;
    try {
        e.generate(prompts, gp);
        FAIL() << "no error";
    } catch (const rs::Error & err) {
        EXPECT_NE(std::string(err.what()).find("does not fit"), std::string::npos) << err.what();
    }
}

INSTANTIATE_TEST_SUITE_P(AllArchs, GenerateArch, testing::ValuesIn(rs::make_model_archs()),
                         [](const auto & param_info) {
                             std::string n = param_info.param;
                             std::replace(n.begin(), n.end(), '-', '_');
                             return n;
                         });

}  // namespace
