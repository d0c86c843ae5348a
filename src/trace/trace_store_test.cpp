// Trace store: f16 conversion, shard round trip, directory preparation and its error paths.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include <unistd.h>

#include "routescope/common.h"
#include "routescope/file_io.h"
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

// ---- hardening (issue #15): bad shards and manifests are rs::Error, never a crash or a result

namespace {

// Rewrites shard 0 of `dir` with tensor `name` replaced by `data` (same dtype, given shape).
template <class T>
void replace_tensor(const fs::path & dir, const std::string & name, std::vector<T> data,
                    std::vector<int64_t> shape) {
    const auto path = (dir / rs::shard_file_name(0)).string();
    const rs::StFile f = rs::st_read(path);
    std::vector<rs::StTensorView> t;
    for (auto it = f.header.begin(); it != f.header.end(); ++it) {
        if (it.key() == "__metadata__") continue;
        auto v = f.get(it.key(), it.value()["dtype"].get<std::string>());
        if (it.key() == name) v.data = data.data(), v.nbytes = data.size() * sizeof(T), v.shape = shape;
        t.push_back(v);
    }
    rs::st_write(path, t, f.metadata);
}

std::string error_of(const std::function<void()> & fn) {
    try {
        fn();
    } catch (const rs::Error & e) {
        return e.what();
    }
    return "";
}

fs::path written_trace(const std::string & name, rs::TraceManifest & m) {
    const auto dir = fresh_dir(name);
    m = small_manifest();
    rs::prepare_trace_dir(dir, m, false);
    rs::write_shard(dir, 0, m, small_shard());
    return dir;
}

}  // namespace

TEST(TraceHardening, DataOffsetsWithFewerThanTwoEntries) {
    // 1. of the issue: {"data_offsets": [0]} used to read off[1] out of bounds
    const std::string hdr = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})";
    std::vector<uint8_t> b(8 + hdr.size() + 4);
    const uint64_t n = hdr.size();
    std::memcpy(b.data(), &n, 8);
    std::memcpy(b.data() + 8, hdr.data(), hdr.size());
    const auto msg = error_of([&] { rs::st_parse("x.safetensors", b); });
    EXPECT_NE(msg.find("x.safetensors: tensor 'a' has data_offsets that are not two"), std::string::npos)
        << msg;
    for (const char * bad : {R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})",
                             R"({"a":{"dtype":"F32","shape":"x","data_offsets":[0,4]}})",
                             R"({"a":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})",
                             R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})",
                             R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}})",
                             R"({"__metadata__":{"k":1}})", R"([1,2])", R"({"a":3})"}) {
        const std::string h = bad;
        std::vector<uint8_t> c(8 + h.size() + 4);
        const uint64_t hn = h.size();
        std::memcpy(c.data(), &hn, 8);
        std::memcpy(c.data() + 8, h.data(), h.size());
        EXPECT_THROW(rs::st_parse("x", c), rs::Error) << bad;
    }
}

TEST(TraceHardening, NonFiniteOrNegativeProbabilitiesAndBadOffsets) {
    rs::TraceManifest m;
    {
        const auto dir = written_trace("nan", m);
        std::vector<float> p(24, 0.25f);
        p[5] = std::nanf("");
        replace_tensor(dir, "probs", p, {3, 2, 4});
        EXPECT_NE(error_of([&] { rs::read_shard(dir, m, 0); }).find("not finite in [0, 1]"),
                  std::string::npos);
    }
    {
        const auto dir = written_trace("neg", m);
        std::vector<float> p(24, 0.25f);
        p[0] = -0.5f;
        replace_tensor(dir, "probs", p, {3, 2, 4});
        EXPECT_THROW(rs::read_shard(dir, m, 0), rs::Error);
    }
    {
        const auto dir = written_trace("off", m);
        replace_tensor(dir, "seq_offset", std::vector<int64_t>{-1, 2, 3}, {3});
        EXPECT_NE(error_of([&] { rs::read_shard(dir, m, 0); }).find("seq_offset"), std::string::npos);
        replace_tensor(dir, "seq_offset", std::vector<int64_t>{0, 3, 2}, {3});  // decreasing
        EXPECT_THROW(rs::read_shard(dir, m, 0), rs::Error);
        // found by rs_fuzz under UBSan: the length INT64_MIN − 2 overflowed before the check
        replace_tensor(dir, "seq_offset", std::vector<int64_t>{0, INT64_MIN, 3}, {3});
        EXPECT_NE(error_of([&] { rs::read_shard(dir, m, 0); }).find("seq_offset decreases"),
                  std::string::npos);
    }
    {
        const auto dir = written_trace("ids", m);
        replace_tensor(dir, "topk", std::vector<int16_t>(12, 4), {3, 2, 2});  // E = 4: id 4 is out of range
        EXPECT_NE(error_of([&] { rs::read_shard(dir, m, 0); }).find("expert id 4"), std::string::npos);
    }
    {
        const auto dir = written_trace("pos", m);
        replace_tensor(dir, "seq_index", std::vector<int64_t>{0, 7}, {2});
        EXPECT_NE(error_of([&] { rs::read_shard(dir, m, 0); }).find("corpus position 7"), std::string::npos);
    }
}

TEST(TraceHardening, ManifestFieldsAreValidated) {
    const auto good = rs::manifest_to_json(small_manifest());
    EXPECT_NO_THROW(rs::manifest_from_json(good));
    auto expect_bad = [&](const std::function<void(nlohmann::json &)> & edit, const std::string & needle) {
        auto j = good;
        edit(j);
        const auto msg = error_of([&] { rs::manifest_from_json(j); });
        EXPECT_NE(msg.find(needle), std::string::npos) << needle << " | " << msg;
        EXPECT_EQ(msg.find("json.exception"), std::string::npos) << msg;
    };
    expect_bad([](auto & j) { j["model"]["n_layer"] = 3.5; }, "model.n_layer\" must be an integer");
    expect_bad([](auto & j) { j["model"]["moe_layers"] = {2, 0}; }, "strictly ascending");
    expect_bad([](auto & j) { j["model"]["moe_layers"] = {0, 0}; }, "strictly ascending");
    expect_bad([](auto & j) { j["model"]["moe_layers"] = {0, 3}; }, "not a block index");
    expect_bad([](auto & j) { j["model"]["top_k"] = 5; }, "model.top_k");
    expect_bad([](auto & j) { j["model"]["n_expert"] = 4294967300; }, "model.n_expert");
    expect_bad([](auto & j) { j["corpus"]["langs"] = {"eng_Latn", "eng_Latn"}; }, "twice");
    expect_bad([](auto & j) { j["corpus"]["n_sequences"] = -3; }, "corpus.n_sequences");
    expect_bad([](auto & j) { j["corpus"]["langs"] = "eng_Latn"; }, "non-empty list");
    expect_bad([](auto & j) { j["store"]["has_logits"] = 1; }, "true or false");
    expect_bad([](auto & j) { j["store"]["shard_sha256"] = {{"9", std::string(64, 'a')}}; }, "shard index");
    // an XXH3-128 digest has 32 hex digits, a SHA-256 64
    expect_bad([](auto & j) { j["store"]["shard_xxh3_128"] = {{"0", std::string(64, 'a')}}; }, "XXH3-128");
    expect_bad([](auto & j) { j.erase("model"); }, "\"model\" is missing");
}

TEST(TraceHardening, NSequencesLargerThanRecordedIsRefused) {
    rs::TraceManifest m;
    const auto dir = written_trace("nseq", m);
    m.n_sequences = 2;  // shard 0 holds 2 sequences; with 3 the shard must hold positions 0, 1 (S=2): ok
    EXPECT_NO_THROW(rs::read_shard(dir, m, 0));
    m.n_sequences = 1;  // shard 0 would hold 1 sequence, it holds 2
    EXPECT_THROW(rs::read_shard(dir, m, 0), rs::Error);
    m.n_sequences = 3;
    EXPECT_THROW(rs::read_shard(dir, m, 5), rs::Error);  // beyond the manifest's shards
}

TEST(TraceHardening, ResumeVerifiesShardChecksumsAndCorpusHash) {
    const auto dir = fresh_dir("resume_sha");
    auto m = small_manifest();
    m.corpus_sha256 = std::string(64, 'a');
    rs::prepare_trace_dir(dir, m, false);
    rs::set_shard_digests(m, 0, rs::write_shard(dir, 0, m, small_shard()));
    rs::write_manifest(dir, m);
    EXPECT_EQ(rs::read_manifest(dir).shard_sha256.at(0), m.shard_sha256.at(0));
    EXPECT_EQ(rs::read_manifest(dir).shard_index_sha256.at(0), m.shard_index_sha256.at(0));
    const std::string bytes = rs::read_file((dir / rs::shard_file_name(0)).string());
    EXPECT_EQ(m.shard_xxh3_128.at(0), rs::xxh3_128_hex(bytes.data(), bytes.size()));
    EXPECT_EQ(rs::read_manifest(dir).shard_xxh3_128, m.shard_xxh3_128);
    auto again = small_manifest();
    again.corpus_sha256 = m.corpus_sha256;
    EXPECT_EQ(rs::prepare_trace_dir(dir, again, true), std::vector<int64_t>{0});
    EXPECT_EQ(again.shard_index_sha256, m.shard_index_sha256);  // kept with the shard it describes
    EXPECT_EQ(again.shard_xxh3_128, m.shard_xxh3_128);
    EXPECT_EQ(again.shard_index_xxh3_128.size(), 1u);
    EXPECT_EQ(again.shard_index_xxh3_128, m.shard_index_xxh3_128);
    // an empty (or truncated) shard does not count as done and reading it names the checksum
    rs::write_manifest(dir, m);
    std::ofstream(dir / rs::shard_file_name(0), std::ios::trunc).close();
    EXPECT_NE(error_of([&] { rs::read_shard(dir, m, 0); }).find("checksum"), std::string::npos);
    again = small_manifest();
    again.corpus_sha256 = m.corpus_sha256;
    EXPECT_TRUE(rs::prepare_trace_dir(dir, again, true).empty());
    // a corpus whose content changed (same row count) is refused
    auto changed = small_manifest();
    changed.corpus_sha256 = std::string(64, 'b');
    EXPECT_NE(error_of([&] { rs::prepare_trace_dir(dir, changed, true); }).find("corpus content"),
              std::string::npos);
}

TEST(TraceHardening, StaleTemporariesAreRemoved) {
    const auto dir = fresh_dir("tmp");
    fs::create_directories(dir);
    // pid 2^22 + 1 is above Linux's pid_max limit, so no such process exists
    std::ofstream(dir / "shard-00000.safetensors.tmp-4194305") << "x";
    std::ofstream(dir / ("keep.tmp-" + std::to_string(getpid()))) << "x";
    auto m = small_manifest();
    rs::prepare_trace_dir(dir, m, false);
    EXPECT_FALSE(fs::exists(dir / "shard-00000.safetensors.tmp-4194305"));
    EXPECT_TRUE(fs::exists(dir / ("keep.tmp-" + std::to_string(getpid()))));
    EXPECT_THROW(rs::write_file_atomic(dir.string(), "x"), rs::Error);  // a directory: refused, nothing left
    EXPECT_FALSE(fs::exists(dir.string() + ".tmp-" + std::to_string(getpid())));
}

// Found by rs_fuzz (tests/fuzz/manifest/seqs-per-shard-zero): a zero lower bound check was skipped for
// JSON numbers stored unsigned, and trace_n_shards then divided by zero (SIGFPE).
TEST(TraceHardening, ZeroSeqsPerShardIsRefused) {
    auto j = rs::manifest_to_json(small_manifest());
    j["store"]["seqs_per_shard"] = 0u;
    EXPECT_THROW(rs::manifest_from_json(j), rs::Error);
    j["store"]["seqs_per_shard"] = 2u;
    j["model"]["top_k"] = 0u;
    EXPECT_THROW(rs::manifest_from_json(j), rs::Error);
}

// Found by rs_fuzz under UBSan: a file whose header length is odd puts every tensor at an odd address;
// such a file is valid safetensors and must read the same (no misaligned loads).
TEST(TraceHardening, MisalignedTensorsReadTheSame) {
    rs::TraceManifest m;
    const auto dir = written_trace("misaligned", m);
    m.probs_dtype = "f16";
    fs::remove_all(dir);
    rs::prepare_trace_dir(dir, m, false);
    rs::write_shard(dir, 0, m, small_shard());
    const auto path = (dir / rs::shard_file_name(0)).string();
    const std::string raw = rs::read_file(path);
    uint64_t n = 0;
    std::memcpy(&n, raw.data(), 8);
    std::string odd = raw.substr(0, 8 + n) + " " + raw.substr(8 + n);  // JSON allows trailing spaces
    ++n;
    std::memcpy(odd.data(), &n, 8);
    const auto a = rs::read_shard(dir, m, 0);
    const auto b = rs::parse_shard(path, std::vector<uint8_t>(odd.begin(), odd.end()), m, 0);
    EXPECT_EQ(a.probs, b.probs);
    EXPECT_EQ(a.topk, b.topk);
    EXPECT_EQ(a.tokens, b.tokens);
}
