// The independent forward check (issue #5): a qwen3moe GGUF evaluated by routescope's libtorch model and
// by llama.cpp on the same tokens. Compared: the output logits, and per MoE layer the router distribution p
// and the selected experts as `routescope trace` records them (f32). This validates the GGUF export and the
// router tap against a second implementation. Run on a generated qwen3moe model (make-model) and on the
// bundled trained model, over real FLoRes devtest sentences in several scripts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "routescope/engine.h"
#include "routescope/trace.h"
#include "routescope/train.h"
#include "test_util.h"

namespace {

using namespace rs::test;

struct Parity {
    // over the tokens of each sequence before its first top-k disagreement (a flipped selection changes
    // everything downstream, so later differences measure the flip, not the implementations)
    double max_logit_diff = 0, max_logit_abs = 0, max_p_diff = 0;
    int64_t compared_tokens = 0;
    int64_t token_layers = 0, same_topk = 0;  // over all tokens
};

// Traces `langs` × `limit` FLoRes devtest sentences with `routescope trace --dtype f32`, then re-runs every
// recorded sequence through the reference forward and llama.cpp's output logits.
Parity compare(const std::string & model, const std::string & name, const std::string & langs, int limit) {
    const auto dir = temp_dir("parity_" + name);
    const auto r =
        run_cli("trace --model " + model + " --corpus " + flores_devtest() + " --langs " + langs +
                " --limit " + std::to_string(limit) +
                " --dtype f32 --max-tokens 96 --threads 1 --no-progress --out " + (dir / "t").string());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const auto m = rs::read_manifest((dir / "t").string());
    rs::EngineParams ep;
    ep.n_threads = 1;
    ep.tap = false;
    rs::Engine engine(model, ep);
    Parity out;
    for (const int64_t k : rs::list_shards((dir / "t").string())) {
        const auto s = rs::read_shard((dir / "t").string(), m, k);
        for (const auto & q : s.seqs) {
            const std::vector<int32_t> toks(s.tokens.begin() + q.tok_begin,
                                            s.tokens.begin() + q.tok_begin + q.n_tok);
            const auto ref = rs::reference_forward(model, toks);
            const std::vector<std::vector<int32_t>> one{toks};
            const auto llama_logits = engine.output_logits(one)[0];
            EXPECT_EQ(llama_logits.size(), ref.logits.size());
            EXPECT_EQ(ref.n_moe, s.n_moe);
            EXPECT_EQ(ref.n_expert, s.n_expert);
            int64_t clean = q.n_tok;  // tokens before the first disagreement
            for (int64_t t = 0; t < q.n_tok; ++t)
                for (int l = 0; l < s.n_moe; ++l) {
                    auto a = std::vector<int32_t>(ref.topk.begin() + (t * ref.n_moe + l) * ref.top_k,
                                                  ref.topk.begin() + (t * ref.n_moe + l + 1) * ref.top_k);
                    const auto ids = s.ids(q.tok_begin + t, l);
                    std::vector<int32_t> b(ids.begin(), ids.end());
                    std::sort(a.begin(), a.end());
                    std::sort(b.begin(), b.end());
                    ++out.token_layers;
                    out.same_topk += a == b;
                    if (a != b) clean = std::min(clean, t);
                }
            out.compared_tokens += clean;
            for (int64_t t = 0; t < clean; ++t) {
                for (int64_t v = 0; v < ref.n_vocab; ++v) {
                    const size_t i = (size_t)(t * ref.n_vocab + v);
                    out.max_logit_diff =
                        std::max(out.max_logit_diff, (double)std::fabs(ref.logits[i] - llama_logits[i]));
                    out.max_logit_abs = std::max(out.max_logit_abs, (double)std::fabs(ref.logits[i]));
                }
                for (int l = 0; l < s.n_moe; ++l) {
                    const auto p = s.p(q.tok_begin + t, l);
                    for (int e = 0; e < s.n_expert; ++e)
                        out.max_p_diff = std::max(
                            out.max_p_diff,
                            (double)std::fabs(
                                p[e] - ref.router_probs[(size_t)((t * ref.n_moe + l) * ref.n_expert + e)]));
                }
            }
        }
    }
    std::printf(
        "[parity %s] %lld token-layers, top-k sets identical %.2f%%; over %lld tokens before a flip: max "
        "|Δlogit| %.3g (max |logit| %.3g), max |Δp| %.3g\n",
        name.c_str(), (long long)out.token_layers,
        100.0 * (double)out.same_topk / (double)std::max<int64_t>(out.token_layers, 1),
        (long long)out.compared_tokens, out.max_logit_diff, out.max_logit_abs, out.max_p_diff);
    return out;
}

// make-model's qwen3moe: f32 weights, so the two implementations differ only by llama.cpp's f16 KV cache
// and summation order.
TEST(Parity, GeneratedQwen3Moe) {
    const auto p =
        compare(tiny_model("qwen3moe", 4, 8, 2), "generated", "eng_Latn,deu_Latn,zho_Hans,hin_Deva", 4);
    ASSERT_GT(p.token_layers, 500);
    ASSERT_GT(p.compared_tokens, 0.8 * p.token_layers / 4);
    EXPECT_LT(p.max_logit_diff, 1e-2 * std::max(1.0, p.max_logit_abs));
    EXPECT_LT(p.max_p_diff, 1e-3);
    EXPECT_GE((double)p.same_topk, 0.99 * (double)p.token_layers);
}

// The bundled trained model: f16 matrices, which llama.cpp multiplies with activations rounded to f16
// while the reference computes in f32 from the same f16 weights, hence looser bounds than above.
TEST(Parity, BundledTinyPolyglotMoe) {
    const std::string model = std::string(RS_SOURCE_DIR) + "/models/tiny-polyglot-moe.gguf";
    ASSERT_TRUE(fs::exists(model)) << model;
    const auto p =
        compare(model, "bundled", "eng_Latn,deu_Latn,rus_Cyrl,zho_Hans,hin_Deva,swh_Latn,yor_Latn", 3);
    ASSERT_GT(p.token_layers, 1000);
    ASSERT_GT(p.compared_tokens, 0.5 * p.token_layers / 8);
    EXPECT_LT(p.max_logit_diff, 2e-2 * std::max(1.0, p.max_logit_abs));
    EXPECT_LT(p.max_p_diff, 1e-2);
    EXPECT_GE((double)p.same_topk, 0.99 * (double)p.token_layers);
}

}  // namespace
