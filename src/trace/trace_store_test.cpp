// Trace store: f16 conversion, shard round trip, directory preparation and its error paths.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "routescope/common.h"
#include "routescope/trace.h"
#include "safetensors.h"

namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string & name) {
    const fs::path d = fs::path(testing::TempDir()) / ("rs_trace_" + name);
    fs::remove_all(d);
    return d;
}

rs::TraceManifest small_manifest() {
    rs::TraceManifest m;
    m.model_path = "m.gguf";
    m.model_sha256 = "abc123";
    m.arch = "olmoe";
    m.n_layer = 3;
    m.moe_layers = {0, 2};
    m.n_expert = 4;
    m.top_k = 2;
    m.gating = "softmax";
    m.corpus = "tsv:x.tsv";
    m.langs = {"eng_Latn", "deu_Latn"};
    m.domains = {"flores"};
    m.n_sequences = 3;
    m.seqs_per_shard = 2;
    m.probs_dtype = "f32";
    return m;
}

// Two sequences of 2 and 1 tokens, 2 MoE layers, 4 experts, top-2.
rs::TraceShard small_shard() {
    rs::TraceShard s;
    s.n_moe = 2, s.n_expert = 4, s.top_k = 2;
    s.seqs = {{0, 5, 0, 0, "a", 0, 2}, {1, 5, 1, 0, "b", 2, 1}};
    s.tokens = {1, 7, 1};
    for (int t = 0; t < 3; ++t)
        for (int l = 0; l < 2; ++l) {
            const float v[4] = {0.1f * (t + 1), 0.2f, 0.3f, 0.7f - 0.1f * (t + 1) + 0.0f * l};
            s.probs.insert(s.probs.end(), v, v + 4);
            s.topk.push_back((int16_t)(3 - l));
            s.topk.push_back((int16_t)l);
        }
    return s;
}

}  // namespace

TEST(F16, ExactValues) {
    // binary16 bit patterns computed by hand: sign | exponent+15 | 10-bit mantissa.
    EXPECT_EQ(rs::f32_to_f16(0.0f), 0x0000);
    EXPECT_EQ(rs::f32_to_f16(-0.0f), 0x8000);
    EXPECT_EQ(rs::f32_to_f16(1.0f), 0x3c00);
    EXPECT_EQ(rs::f32_to_f16(0.5f), 0x3800);
    EXPECT_EQ(rs::f32_to_f16(-2.0f), 0xc000);
    EXPECT_EQ(rs::f32_to_f16(65504.0f), 0x7bff);         // largest finite half
    EXPECT_EQ(rs::f32_to_f16(65520.0f), 0x7c00);         // rounds to inf
    EXPECT_EQ(rs::f32_to_f16(0x1p-24f), 0x0001);         // smallest subnormal
    EXPECT_EQ(rs::f32_to_f16(0x1p-25f), 0x0000);         // tie at half the smallest subnormal: to even (0)
    EXPECT_EQ(rs::f32_to_f16(0x1.8p-24f), 0x0002);       // 1.5 units: tie, to even (2)
    EXPECT_EQ(rs::f32_to_f16(1.0f + 0x1p-11f), 0x3c00);  // tie between 1 and 1+2^-10: to even
    EXPECT_EQ(rs::f32_to_f16(1.0f + 0x1.8p-11f), 0x3c01);
    EXPECT_EQ(rs::f32_to_f16(0.1f), 0x2e66);  // 0.1 = 1.6·2^-4 → mantissa round(0.6·1024)=614=0x266
    EXPECT_FLOAT_EQ(rs::f16_to_f32(0x3555), 0.333251953125f);
    EXPECT_FLOAT_EQ(rs::f16_to_f32(0x0001), 0x1p-24f);
    EXPECT_TRUE(std::isinf(rs::f16_to_f32(0x7c00)));
    // Every finite half survives a round trip.
    for (uint32_t h = 0; h < 0x10000; ++h) {
        if ((h & 0x7c00) == 0x7c00) continue;
        ASSERT_EQ(rs::f32_to_f16(rs::f16_to_f32((uint16_t)h)), h) << h;
    }
}

TEST(TraceStore, ShardRoundTrip) {
    for (const char * dtype : {"f32", "f16"}) {
        const auto dir = fresh_dir(std::string("rt_") + dtype);
        auto m = small_manifest();
        m.probs_dtype = dtype;
        ASSERT_TRUE(rs::prepare_trace_dir(dir, m, false).empty());
        const auto s = small_shard();
        rs::write_shard(dir, 0, m, s);
        EXPECT_EQ(rs::list_shards(dir), std::vector<int64_t>{0});
        const auto m2 = rs::read_manifest(dir);
        EXPECT_EQ(rs::manifest_to_json(m2), rs::manifest_to_json(m));
        EXPECT_EQ(rs::trace_n_shards(m2), 2);
        const auto r = rs::read_shard(dir, m2, 0);
        ASSERT_EQ(r.seqs.size(), 2u);
        EXPECT_EQ(r.seqs[1].id, "b");
        EXPECT_EQ(r.seqs[1].lang, 1);
        EXPECT_EQ(r.seqs[1].tok_begin, 2);
        EXPECT_EQ(r.seqs[1].n_tok, 1);
        EXPECT_EQ(r.tokens, s.tokens);
        EXPECT_EQ(r.topk, s.topk);
        const float tol = std::string(dtype) == "f16" ? 1e-3f : 0.0f;
        for (size_t i = 0; i < s.probs.size(); ++i) EXPECT_NEAR(r.probs[i], s.probs[i], tol);
        const auto p = r.seq_probs(0, 1);  // sequence 0, MoE slot 1: rows of tokens 0 and 1
        ASSERT_EQ(p.size(), 8u);
        EXPECT_NEAR(p[4], 0.2f, tol);
        EXPECT_EQ(r.seq_topk(1, 1), (std::vector<int16_t>{2, 1}));
    }
}

TEST(TraceStore, RefusesOtherModelAndUnrequestedResume) {
    const auto dir = fresh_dir("refuse");
    auto m = small_manifest();
    rs::prepare_trace_dir(dir, m, false);
    rs::write_shard(dir, 0, m, small_shard());
    EXPECT_THROW(rs::prepare_trace_dir(dir, m, false), rs::Error);  // exists, no --resume
    EXPECT_EQ(rs::prepare_trace_dir(dir, m, true), std::vector<int64_t>{0});
    auto other = m;
    other.model_sha256 = "fff";
    try {
        rs::prepare_trace_dir(dir, other, true);
        FAIL();
    } catch (const rs::Error & e) {
        EXPECT_NE(std::string(e.what()).find("different model"), std::string::npos);
    }
    auto other_corpus = m;
    other_corpus.langs = {"eng_Latn"};
    EXPECT_THROW(rs::prepare_trace_dir(dir, other_corpus, true), rs::Error);
}

TEST(TraceStore, CorruptFilesGiveErrors) {
    const auto dir = fresh_dir("corrupt");
    auto m = small_manifest();
    rs::prepare_trace_dir(dir, m, false);
    rs::write_shard(dir, 0, m, small_shard());
    const auto shard = dir / rs::shard_file_name(0);
    fs::resize_file(shard, fs::file_size(shard) - 7);  // truncated
    EXPECT_THROW(rs::read_shard(dir, m, 0), rs::Error);
    std::ofstream(dir / "manifest.json") << "{ not json";
    EXPECT_THROW(rs::read_manifest(dir), rs::Error);
    EXPECT_THROW(rs::read_manifest((dir / "nope").string()), rs::Error);
}
