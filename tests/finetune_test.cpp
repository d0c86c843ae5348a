// `routescope finetune` on the bundled model (FLoRes dev, Swahili): frozen means frozen (every byte outside
// the selected expert slices is the input's, the selected slices changed, in f16 and in Q8_0), the tuned GGUF
// loads in llama.cpp and routes exactly as the base up to the first trained block, a killed run resumed
// equals an uninterrupted one, and bad input gets one-line errors. The gradient check is beside the code
// (src/train/finetune_grad_test.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>

#include <ggml.h>
#include <gguf.h>

#include "routescope/make_model.h"
#include "routescope/model.h"
#include "routescope/trace.h"
#include "test_util.h"

namespace {

using namespace rs::test;

std::string bundled_model() {
    return std::string(RS_SOURCE_DIR) + "/models/tiny-polyglot-moe.gguf";
}

// Blocks 3 and 6 of the bundled model (first trained block 3), experts Swahili uses there.
const std::map<int, std::vector<int>> kSelection = {{3, {1, 5}}, {6, {2}}};

std::string write_experts(const fs::path & dir, const std::string & model_sha, const std::string & sets_body,
                          const std::string & name = "experts.json") {
    const fs::path p = dir / name;
    std::ofstream(p) << R"({"method": "rise", "model": {"sha256": ")" << model_sha << R"("}, "sets": )"
                     << sets_body << "}";
    return p.string();
}

std::string selection_json() {
    return R"({"selected": {"3": [1, 5], "6": [2]}, "other": {"0": [0]}})";
}

std::string finetune_args(const std::string & model, const std::string & experts, const fs::path & out,
                          const std::map<std::string, std::string> & over = {}) {
    std::map<std::string, std::string> o = {{"--model", model},
                                            {"--experts", experts},
                                            {"--corpus", "flores:" + data_dir() + "/flores200/dev"},
                                            {"--langs", "swh_Latn"},
                                            {"--limit", "48"},
                                            {"--epochs", "2"},
                                            {"--batch", "2"},
                                            {"--grad-accum", "4"},
                                            {"--lr", "1e-2"},
                                            {"--checkpoint-every", "4"},
                                            {"--threads", "1"},
                                            {"--out", out.string()}};
    for (const auto & [k, v] : over) o[k] = v;
    if (o["--experts"].empty()) o.erase("--experts");  // (--subnetwork all needs none)
    std::string args = "finetune --no-progress";
    for (const auto & [k, v] : o) args += " " + k + (v.empty() ? "" : " " + v);
    return args;
}

struct Gguf {
    std::unique_ptr<gguf_context, decltype(&gguf_free)> g{nullptr, gguf_free};
    std::unique_ptr<ggml_context, decltype(&ggml_free)> ctx{nullptr, ggml_free};
    explicit Gguf(const std::string & path) {
        ggml_context * raw = nullptr;
        g.reset(gguf_init_from_file(path.c_str(), {false, &raw}));
        ctx.reset(raw);
    }
};

// Frozen means frozen: compares every tensor of `tuned` with `base`, slice by slice for the stacked experts.
void expect_only_selected_slices_changed(const std::string & base, const std::string & tuned) {
    Gguf a(base), b(tuned);
    ASSERT_TRUE(a.g && b.g);
    ASSERT_EQ(gguf_get_n_tensors(a.g.get()), gguf_get_n_tensors(b.g.get()));
    int changed = 0;
    for (int64_t i = 0; i < gguf_get_n_tensors(a.g.get()); ++i) {
        const std::string name = gguf_get_tensor_name(a.g.get(), i);
        EXPECT_EQ(name, gguf_get_tensor_name(b.g.get(), i));  // same order
        const ggml_tensor * ta = ggml_get_tensor(a.ctx.get(), name.c_str());
        const ggml_tensor * tb = ggml_get_tensor(b.ctx.get(), name.c_str());
        ASSERT_TRUE(tb) << name;
        ASSERT_EQ(ta->type, tb->type) << name;
        ASSERT_EQ(ggml_nbytes(ta), ggml_nbytes(tb)) << name;
        int block = -1;
        char kind[32] = {0};
        const bool experts = std::sscanf(name.c_str(), "blk.%d.ffn_%31[a-z]_exps.weight", &block, kind) == 2;
        const auto sel = kSelection.find(block);
        if (!experts || sel == kSelection.end()) {
            EXPECT_EQ(std::memcmp(ta->data, tb->data, ggml_nbytes(ta)), 0) << name << " changed";
            continue;
        }
        for (int64_t e = 0; e < ta->ne[2]; ++e) {
            const bool selected =
                std::find(sel->second.begin(), sel->second.end(), (int)e) != sel->second.end();
            const bool same = std::memcmp((const char *)ta->data + e * ta->nb[2],
                                          (const char *)tb->data + e * tb->nb[2], ta->nb[2]) == 0;
            if (selected) {
                EXPECT_FALSE(same) << name << " expert " << e << " was selected but did not change";
                changed += !same;
            } else {
                EXPECT_TRUE(same) << name << " expert " << e << " was frozen but changed";
            }
        }
    }
    EXPECT_EQ(changed, 3 * 3);  // 3 experts × gate, up, down
    // the metadata is the base's plus the provenance keys
    EXPECT_EQ(gguf_get_n_kv(b.g.get()), gguf_get_n_kv(a.g.get()) + 7);
    const int64_t k = gguf_find_key(b.g.get(), "routescope.finetune.base_sha256");
    ASSERT_GE(k, 0);
    EXPECT_EQ(std::string(gguf_get_val_str(b.g.get(), k)), rs::model_sha256(base));
}

// Router probabilities of every token and block, from `trace --dtype f32` on a few devtest sentences.
std::vector<std::vector<float>> routing(const std::string & model, const fs::path & dir) {
    const auto r = run_cli(
        "trace --model " + model + " --corpus " + flores_devtest() +
        " --langs swh_Latn,eng_Latn --limit 8 --dtype f32 --threads 1 --no-progress --out " + dir.string());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const auto m = rs::read_manifest(dir.string());
    std::vector<std::vector<float>> by_block(8);
    for (const int64_t sh : rs::list_shards(dir.string())) {
        const auto s = rs::read_shard(dir.string(), m, sh);
        for (int64_t t = 0; t < (int64_t)s.tokens.size(); ++t)
            for (int l = 0; l < s.n_moe; ++l) {
                const auto p = s.p(t, l);
                by_block[(size_t)l].insert(by_block[(size_t)l].end(), p.begin(), p.end());
            }
    }
    return by_block;
}

TEST(Finetune, OnlySelectedSlicesChangeAndRoutingBeforeTheFirstTrainedBlockIsBitIdentical) {
    const auto dir = temp_dir("finetune_frozen");
    const auto base = bundled_model();
    const auto experts = write_experts(dir, rs::model_sha256(base), selection_json());
    const auto r = run_cli(finetune_args(base, experts, dir / "tuned.gguf"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("trained 3 experts from block 3"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("9 expert slices rewritten as f16"), std::string::npos) << r.out;
    expect_only_selected_slices_changed(base, (dir / "tuned.gguf").string());

    // llama.cpp loads and traces it; the router of block b sees the residual stream after block b's
    // attention, which no expert of block b or later feeds: blocks 0..3 route bit-identically, later move
    const auto before = routing(base, dir / "trace_base");
    const auto after = routing((dir / "tuned.gguf").string(), dir / "trace_tuned");
    for (int l = 0; l <= 3; ++l) EXPECT_TRUE(before[(size_t)l] == after[(size_t)l]) << "block " << l;
    EXPECT_FALSE(before[4] == after[4]);
    EXPECT_FALSE(before[7] == after[7]);

    // the loss went down on the training language
    const auto pos = r.out.find("loss ");
    ASSERT_NE(pos, std::string::npos);
    double first = 0, last = 0;
    ASSERT_EQ(std::sscanf(r.out.c_str() + pos, "loss %lf -> %lf", &first, &last), 2) << r.out;
    EXPECT_LT(last, first);
}

TEST(Finetune, QuantisedBaseIsReencodedInItsOwnType) {
    const auto dir = temp_dir("finetune_q8");
    const auto q8 = (dir / "base-q8_0.gguf").string();
    rs::quantize_model(bundled_model(), q8, "Q8_0");
    const auto experts = write_experts(dir, rs::model_sha256(q8), selection_json());
    const auto r = run_cli(finetune_args(q8, experts, dir / "tuned.gguf", {{"--epochs", "1"}}));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("9 expert slices rewritten as q8_0"), std::string::npos) << r.out;
    expect_only_selected_slices_changed(q8, (dir / "tuned.gguf").string());
    const auto ppl = run_cli("ppl --no-progress --model " + (dir / "tuned.gguf").string() + " --corpus " +
                             flores_devtest() + " --langs swh_Latn --limit 4");
    EXPECT_EQ(ppl.exit_code, 0) << ppl.err;
}

TEST(Finetune, ResumeEqualsUninterrupted) {
    const auto dir = temp_dir("finetune_resume");
    const auto base = bundled_model();
    const auto experts = write_experts(dir, rs::model_sha256(base), selection_json());
    // 48 lines / (2 × 4) = 6 steps per epoch, 12 in all; stopped after 5 (mid-epoch, between checkpoints 4
    // and 8: the resume goes back to 4)
    ASSERT_EQ(run_cli(finetune_args(base, experts, dir / "full.gguf")).exit_code, 0);
    const auto stopped = run_cli(finetune_args(base, experts, dir / "part.gguf", {{"--stop-after", "5"}}));
    ASSERT_EQ(stopped.exit_code, 0) << stopped.err;
    EXPECT_NE(stopped.out.find("stopped after step 5"), std::string::npos) << stopped.out;
    EXPECT_FALSE(fs::exists(dir / "part.gguf"));
    const auto resumed = run_cli(finetune_args(base, experts, dir / "part.gguf", {{"--resume", ""}}));
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_NE(resumed.err.find("resuming from"), std::string::npos) << resumed.err;
    EXPECT_TRUE(slurp(dir / "full.gguf") == slurp(dir / "part.gguf"));
    expect_clean_error(
        run_cli(finetune_args(base, experts, dir / "part.gguf", {{"--resume", ""}, {"--lr", "1e-3"}})),
        "other settings");
}

TEST(Finetune, ControlsTrainTheSameNumberOfExpertsOrAll) {
    const auto dir = temp_dir("finetune_controls");
    const auto base = bundled_model();
    const auto experts = write_experts(dir, rs::model_sha256(base), selection_json());
    const auto rnd = run_cli(finetune_args(base, experts, dir / "random.gguf",
                                           {{"--subnetwork", "random"}, {"--epochs", "1"}, {"--seed", "3"}}));
    ASSERT_EQ(rnd.exit_code, 0) << rnd.err;
    EXPECT_NE(rnd.out.find("trained 3 experts from block 3"), std::string::npos) << rnd.out;
    {
        Gguf g((dir / "random.gguf").string());
        const int64_t k = gguf_find_key(g.g.get(), "routescope.finetune.experts");
        ASSERT_GE(k, 0);
        const std::string drawn = gguf_get_val_str(g.g.get(), k);  // "3:a,b;6:c"
        int a = -1, b = -1, c = -1;
        ASSERT_EQ(std::sscanf(drawn.c_str(), "3:%d,%d;6:%d", &a, &b, &c), 3) << drawn;
        EXPECT_LT(a, b);
    }
    const auto all =
        run_cli(finetune_args(base, "", dir / "all.gguf", {{"--subnetwork", "all"}, {"--epochs", "1"}}));
    ASSERT_EQ(all.exit_code, 0) << all.err;
    EXPECT_NE(all.out.find("trained 128 experts from block 0"), std::string::npos) << all.out;
}

// `demo --finetune`: selection → finetune (RISE and the random control) → held-out bits per character,
// written for the report, whose RISE section then has the finetuning figure.
TEST(Finetune, DemoStepComparesRiseWithRandomAndBaseInTheReport) {
    const auto dir = temp_dir("finetune_demo");
    const auto r =
        run_cli("demo --out " + dir.string() +
                " --langs eng_Latn,deu_Latn --limit 24 --finetune --finetune-lines 48 --threads 1");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string csv = slurp(dir / "finetune" / "finetune_ppl.csv");
    EXPECT_EQ(csv.rfind("condition,seed,lang,bpc,nll,n_tokens\n", 0), 0u) << csv;
    for (const char * cond : {"base", "rise", "random"})
        for (const char * lang : {"eng_Latn", "deu_Latn", "swh_Latn"})  // the target joins the languages
            EXPECT_NE(csv.find(std::string(cond) + "," + (std::string(cond) == "base" ? "-" : "1") + "," +
                               lang + ","),
                      std::string::npos)
                << cond << " " << lang << "\n"
                << csv;
    EXPECT_NE(r.out.find("<- target"), std::string::npos) << r.out;
    EXPECT_NE(slurp(dir / "report.html").find("Finetuning: change in held-out bits per character"),
              std::string::npos);
    EXPECT_EQ(r.out.find("absent: Finetuning"), std::string::npos) << r.out;
}

TEST(Finetune, BadInputGivesOneLineErrors) {
    const auto dir = temp_dir("finetune_bad");
    const auto base = bundled_model();
    const auto sha = rs::model_sha256(base);
    const auto good = write_experts(dir, sha, selection_json());
    const auto out = dir / "t.gguf";
    auto bad = [&](const std::string & sha_of, const std::string & sets) {
        return write_experts(dir, sha_of, sets, "bad.json");
    };
    expect_clean_error(run_cli(finetune_args(base, bad(std::string(64, 'a'), selection_json()), out)),
                       "selected on another model");
    expect_clean_error(run_cli(finetune_args(base, bad(sha, R"({"selected": {"3": []}})"), out)),
                       "is empty: there is nothing to train");
    expect_clean_error(run_cli(finetune_args(base, bad(sha, R"({"selected": {"9": [1]}})"), out)),
                       "not one of the model's 0..7");
    expect_clean_error(run_cli(finetune_args(base, bad(sha, R"({"selected": {"2": [16]}})"), out)),
                       "outside 0..15");
    std::ofstream(dir / "bad.json") << "{not json";
    expect_clean_error(run_cli(finetune_args(base, (dir / "bad.json").string(), out)), "is not valid JSON");
    expect_clean_error(run_cli(finetune_args(base, good, out, {{"--set", "x"}})),
                       "has no set 'x' (it has: other, selected)");
    expect_clean_error(run_cli(finetune_args(base, good, out, {{"--limit", "5"}})), "corpus too small");
    expect_clean_error(run_cli(finetune_args(tiny_model("olmoe"), good, out)),
                       "the libtorch block implements qwen3moe only");
    expect_clean_error(run_cli(finetune_args(base, good, base)), "--out is the base model");
    expect_clean_error(run_cli(finetune_args(base, "", out)), "--experts is needed");
    expect_clean_error(run_cli(finetune_args(base, good, out, {{"--langs", "xyz_Latn"}})), "xyz_Latn");
}

}  // namespace
