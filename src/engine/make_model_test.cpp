// Tests for make_model: every architecture loads in llama.cpp, tokenizes real text and decodes to
// finite, non-constant logits; files are byte-for-byte reproducible; bad parameters are rejected.
#include "routescope/make_model.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <ggml.h>
#include <gguf.h>
#include <gtest/gtest.h>
#include <llama.h>
#include <unistd.h>

#include "routescope/common.h"

namespace fs = std::filesystem;

namespace {

// A fresh directory per test, removed afterwards.
class TempDir {
  public:
    TempDir() {
        static std::atomic<int> counter{0};
        path_ = fs::path(testing::TempDir()) /
                ("rs_make_model_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
        fs::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    std::string file(const std::string & name) const { return (path_ / name).string(); }

  private:
    fs::path path_;
};

std::string read_bytes(const std::string & path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void quiet_log(ggml_log_level, const char *, void *) {}

// Shared llama.cpp setup: backend once, log silenced unless RS_VERBOSE is set.
class LlamaEnv : public testing::Environment {
  public:
    void SetUp() override {
        llama_backend_init();
        if (std::getenv("RS_VERBOSE") == nullptr) llama_log_set(quiet_log, nullptr);
    }
    void TearDown() override { llama_backend_free(); }
};
const auto * const k_env = testing::AddGlobalTestEnvironment(new LlamaEnv);

using ModelPtr = std::unique_ptr<llama_model, decltype(&llama_model_free)>;
using ContextPtr = std::unique_ptr<llama_context, decltype(&llama_free)>;

ModelPtr load(const std::string & path) {
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    return {llama_model_load_from_file(path.c_str(), mp), llama_model_free};
}

std::string meta(const llama_model * m, const std::string & key) {
    char buf[256];
    const int n = llama_model_meta_val_str(m, key.c_str(), buf, sizeof buf);
    return n < 0 ? std::string("<missing>") : std::string(buf);
}

std::vector<llama_token> tokenize(const llama_vocab * vocab, const std::string & text, bool add_special) {
    std::vector<llama_token> toks(text.size() + 8);
    const int n = llama_tokenize(vocab, text.c_str(), static_cast<int32_t>(text.size()), toks.data(),
                                 static_cast<int32_t>(toks.size()), add_special, /*parse_special=*/false);
    if (n < 0) return {};
    toks.resize(static_cast<size_t>(n));
    return toks;
}

std::string detokenize(const llama_vocab * vocab, const std::vector<llama_token> & toks) {
    std::string out(toks.size() * 16 + 16, '\0');
    const int n = llama_detokenize(vocab, toks.data(), static_cast<int32_t>(toks.size()), out.data(),
                                   static_cast<int32_t>(out.size()), /*remove_special=*/true,
                                   /*unparse_special=*/false);
    if (n < 0) return "<detokenize failed>";
    out.resize(static_cast<size_t>(n));
    return out;
}

bool has_tensor(const std::string & path, const char * name) {
    gguf_init_params gp{/*no_alloc=*/true, /*ctx=*/nullptr};
    gguf_context * g = gguf_init_from_file(path.c_str(), gp);
    if (g == nullptr) ADD_FAILURE() << "not a GGUF file: " << path;
    if (g == nullptr) return false;
    const bool found = gguf_find_tensor(g, name) >= 0;
    gguf_free(g);
    return found;
}

// ---------------------------------------------------------------------------------------------

class MakeModelArch : public testing::TestWithParam<std::string> {};

TEST_P(MakeModelArch, LoadsTokenizesAndDecodes) {
    const std::string arch = GetParam();
    TempDir dir;
    const std::string path = dir.file(arch + ".gguf");
    rs::MakeModelParams p;
    p.arch = arch;
    ASSERT_NO_THROW(rs::make_model(p, path));
    const auto size = fs::file_size(path);
    EXPECT_LT(size, 8u << 20) << "tiny models should stay small";

    ModelPtr model = load(path);
    ASSERT_TRUE(model) << "llama.cpp could not load " << path;
    const llama_model * m = model.get();
    EXPECT_EQ(meta(m, "general.architecture"), arch);
    EXPECT_EQ(meta(m, arch + ".expert_count"), std::to_string(p.n_expert));
    EXPECT_EQ(meta(m, arch + ".expert_used_count"), std::to_string(p.top_k));
    EXPECT_EQ(llama_model_n_layer(m), p.n_layer);
    EXPECT_EQ(llama_model_n_embd(m), p.n_embd);
    EXPECT_TRUE(has_tensor(path, "blk.1.ffn_gate_inp.weight"));

    // The tokenizer covers any UTF-8 (byte fallback) and round-trips.
    const llama_vocab * vocab = llama_model_get_vocab(m);
    const std::string text = "Hello world, Grüße 你好! The experts route tokens.";
    const std::vector<llama_token> toks = tokenize(vocab, text, /*add_special=*/true);
    ASSERT_GT(toks.size(), 3u);
    EXPECT_EQ(toks[0], llama_vocab_bos(vocab));
    // Round-trip without BOS: llama.cpp strips SentencePiece's leading space only when the first
    // token is not a (removed) BOS.
    EXPECT_EQ(detokenize(vocab, tokenize(vocab, text, /*add_special=*/false)), text);

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 256;
    cp.n_batch = 256;
    cp.n_ubatch = 256;
    // One thread: on a busy 2-core machine (ctest -j), ggml's spinning thread pool with 2 threads
    // made each decode ~40x slower (800 ms instead of 20 ms).
    cp.n_threads = 1;
    cp.n_threads_batch = 1;
    ContextPtr ctx(llama_init_from_model(model.get(), cp), llama_free);
    ASSERT_TRUE(ctx);

    std::vector<llama_token> batch_toks = toks;
    llama_batch batch = llama_batch_get_one(batch_toks.data(), static_cast<int32_t>(batch_toks.size()));
    ASSERT_EQ(llama_decode(ctx.get(), batch), 0);
    const float * logits = llama_get_logits_ith(ctx.get(), -1);
    ASSERT_NE(logits, nullptr);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    bool all_finite = true, all_equal = true;
    for (int i = 0; i < n_vocab; ++i) {
        all_finite = all_finite && std::isfinite(logits[i]);
        all_equal = all_equal && logits[i] == logits[0];
    }
    EXPECT_TRUE(all_finite);
    EXPECT_FALSE(all_equal);
}

// The neutral-value rules: norms 1, biases 0 except the gpt-oss router bias, no quantisation scales;
// deepseek2 has a dense layer 0 and a (zero) exp_probs_b on its MoE layers.
TEST_P(MakeModelArch, TensorValuesFollowTheFillRules) {
    const std::string arch = GetParam();
    TempDir dir;
    const std::string path = dir.file(arch + ".gguf");
    rs::MakeModelParams p;
    p.arch = arch;
    p.n_layer = 2;
    rs::make_model(p, path);

    ggml_context * data = nullptr;
    gguf_init_params gp{/*no_alloc=*/false, /*ctx=*/&data};
    gguf_context * g = gguf_init_from_file(path.c_str(), gp);
    ASSERT_NE(g, nullptr);
    bool router_bias_random = false;
    for (int64_t i = 0; i < gguf_get_n_tensors(g); ++i) {
        const std::string name = gguf_get_tensor_name(g, i);
        const ggml_tensor * t = ggml_get_tensor(data, name.c_str());
        ASSERT_EQ(t->type, GGML_TYPE_F32) << name;
        const float * v = static_cast<const float *>(t->data);
        const int64_t n = ggml_nelements(t);
        const bool all_one = std::all_of(v, v + n, [](float x) { return x == 1.0f; });
        const bool all_zero = std::all_of(v, v + n, [](float x) { return x == 0.0f; });
        EXPECT_FALSE(name.ends_with(".scale") || name.ends_with(".input_scale")) << name;
        const bool is_router_bias = name.ends_with("ffn_gate_inp.bias");
        if (is_router_bias) router_bias_random = !all_zero;
        EXPECT_TRUE(!name.ends_with("_norm.weight") || all_one) << name;
        EXPECT_TRUE(!name.ends_with(".bias") || is_router_bias || all_zero) << name;
        const bool is_moe_weight = name.ends_with("exps.weight") || name.ends_with("ffn_gate_inp.weight");
        EXPECT_TRUE(!is_moe_weight || (!all_zero && !all_one)) << name;
    }
    gguf_free(g);
    ggml_free(data);
    EXPECT_EQ(router_bias_random, arch == "gpt-oss");

    if (arch == "deepseek2") {
        EXPECT_FALSE(has_tensor(path, "blk.0.ffn_gate_inp.weight"));
        EXPECT_TRUE(has_tensor(path, "blk.0.ffn_up.weight"));
        EXPECT_TRUE(has_tensor(path, "blk.1.exp_probs_b.bias"));
        EXPECT_TRUE(has_tensor(path, "blk.1.ffn_up_shexp.weight"));
    }
    if (arch == "qwen2moe") {
        EXPECT_TRUE(has_tensor(path, "blk.0.ffn_gate_inp_shexp.weight"));
    }
}

INSTANTIATE_TEST_SUITE_P(AllArchs, MakeModelArch, testing::ValuesIn(rs::make_model_archs()),
                         [](const testing::TestParamInfo<std::string> & param) {
                             std::string name = param.param;
                             for (char & c : name)
                                 if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                             return name;
                         });

TEST(MakeModel, ListsTheSupportedArchs) {
    const std::vector<std::string> want = {"olmoe", "qwen3moe", "phimoe",   "gpt-oss",
                                           "llama", "qwen2moe", "deepseek2"};
    EXPECT_EQ(rs::make_model_archs(), want);
}

TEST(MakeModel, SameSeedSameBytesOtherSeedOtherBytes) {
    TempDir dir;
    rs::MakeModelParams p;
    p.arch = "gpt-oss";  // has random router biases: the widest set of fill rules
    rs::make_model(p, dir.file("a.gguf"));
    rs::make_model(p, dir.file("b.gguf"));
    p.seed = 43;
    rs::make_model(p, dir.file("c.gguf"));
    const std::string a = read_bytes(dir.file("a.gguf"));
    ASSERT_FALSE(a.empty());
    EXPECT_TRUE(a == read_bytes(dir.file("b.gguf")));
    const std::string c = read_bytes(dir.file("c.gguf"));
    EXPECT_EQ(a.size(), c.size());
    EXPECT_FALSE(a == c);
}

TEST(MakeModel, OverwritesAnExistingFile) {
    TempDir dir;
    const std::string path = dir.file("m.gguf");
    std::ofstream(path) << "junk";
    rs::MakeModelParams p;
    p.n_layer = 1;
    rs::make_model(p, path);
    EXPECT_TRUE(load(path));
}

TEST(MakeModel, DenseModelHasNoRouter) {
    TempDir dir;
    for (const char * arch : {"llama", "qwen3moe"}) {
        SCOPED_TRACE(arch);
        const std::string path = dir.file(std::string(arch) + "-dense.gguf");
        rs::MakeModelParams p;
        p.arch = arch;
        p.dense = true;
        rs::make_model(p, path);
        ModelPtr model = load(path);
        ASSERT_TRUE(model);
        EXPECT_EQ(meta(model.get(), meta(model.get(), "general.architecture") + ".expert_count"),
                  "<missing>");
        EXPECT_FALSE(has_tensor(path, "blk.0.ffn_gate_inp.weight"));
        EXPECT_TRUE(has_tensor(path, "blk.0.ffn_up.weight"));
    }
}

TEST(MakeModel, RejectsInvalidParams) {
    TempDir dir;
    const std::string path = dir.file("bad.gguf");
    auto with = [](auto edit) {
        rs::MakeModelParams p;
        edit(p);
        return p;
    };
    const std::vector<rs::MakeModelParams> bad = {
        with([](auto & p) { p.arch = "mamba"; }), with([](auto & p) { p.top_k = 9; }),
        with([](auto & p) { p.top_k = 0; }),      with([](auto & p) { p.n_expert = 1, p.top_k = 1; }),
        with([](auto & p) { p.n_embd = 66; }),    with([](auto & p) { p.n_head = 0; }),
        with([](auto & p) { p.n_layer = 0; }),    with([](auto & p) { p.arch = "deepseek2", p.n_layer = 1; }),
        with([](auto & p) { p.n_ff = 0; }),       with([](auto & p) { p.n_ctx = 0; }),
        with([](auto & p) { p.stdev = 0.0f; }),
    };
    for (const auto & p : bad) {
        EXPECT_THROW(rs::make_model(p, path), rs::Error) << p.arch << " k=" << p.top_k << " e=" << p.n_expert;
    }
    EXPECT_FALSE(fs::exists(path));

    try {
        rs::make_model(with([](auto & p) { p.arch = "mamba"; }), path);
    } catch (const rs::Error & e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("mamba"), std::string::npos);
        EXPECT_EQ(msg.find('\n'), std::string::npos);
    }
}

TEST(MakeModel, UnwritablePathThrows) {
    rs::MakeModelParams p;
    p.n_layer = 1;
    EXPECT_THROW(rs::make_model(p, "/nonexistent-dir/x/model.gguf"), rs::Error);
}

}  // namespace
