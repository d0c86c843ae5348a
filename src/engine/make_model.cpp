// Writes tiny seeded random-weight MoE GGUF models (see routescope/make_model.h).
//
// Route: a gguf_context holding only KV metadata goes to llama_model_init_from_user, which lets
// llama.cpp create every tensor the architecture knows about (as F32, optional ones included);
// a callback fills them deterministically, and the same gguf_context, with those tensors added,
// is written out. This keeps tensor lists and shapes in llama.cpp's hands: we only choose
// hyperparameters. (llama_model_save_to_file would also work, but it writes ~150 keys of
// defaults for every arch, some of them misleading, e.g. expert_weights_norm=false for qwen3moe,
// whose graph always normalises; our file carries only the keys a converter would write.)
#include "routescope/make_model.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <ggml-backend.h>
#include <ggml.h>
#include <gguf.h>
#include <llama.h>

#include "make_model_internal.h"
#include "routescope/common.h"
#include "routescope/spm_vocab.h"

namespace rs {
namespace {

// ---------------------------------------------------------------------------------------------
// Metadata helpers

// Writes `<arch>.<key>` values with the exact GGUF types llama.cpp's loader checks for.
class ArchKv {
  public:
    ArchKv(gguf_context * ctx, std::string arch) : ctx_(ctx), arch_(std::move(arch)) {}
    void u32(const char * key, int v) { gguf_set_val_u32(ctx_, name(key).c_str(), static_cast<uint32_t>(v)); }
    void f32(const char * key, float v) { gguf_set_val_f32(ctx_, name(key).c_str(), v); }
    void flag(const char * key, bool v) { gguf_set_val_bool(ctx_, name(key).c_str(), v); }

  private:
    std::string name(const char * key) const { return arch_ + "." + key; }
    gguf_context * ctx_;
    std::string arch_;
};

// ---------------------------------------------------------------------------------------------
// Per-architecture table. Only the keys an architecture needs beyond the common set (written by
// write_common_kv) live here; tensor lists come from llama.cpp itself.

using ArchKvFn = void (*)(ArchKv & kv, const MakeModelParams & p);

void kv_olmoe(ArchKv &, const MakeModelParams &) {}   // expert width = feed_forward_length
void kv_phimoe(ArchKv &, const MakeModelParams &) {}  // ditto; its norm/output biases are required tensors
void kv_llama(ArchKv &, const MakeModelParams &) {}   // Mixtral: expert width = feed_forward_length

void kv_qwen3moe(ArchKv & kv, const MakeModelParams & p) {
    // Without it llama.cpp falls back to feed_forward_length / expert_used_count.
    kv.u32("expert_feed_forward_length", p.n_ff);
}

void kv_gpt_oss(ArchKv & kv, const MakeModelParams & p) {
    kv.u32("expert_feed_forward_length", p.n_ff);  // required
    kv.u32("attention.sliding_window", 128);       // required; every other layer is SWA (default pattern)
}

void kv_qwen2moe(ArchKv & kv, const MakeModelParams & p) {
    kv.u32("expert_feed_forward_length", p.n_ff);
    kv.u32("expert_shared_feed_forward_length", p.n_ff);  // the sigmoid-gated shared expert
}

void kv_deepseek2(ArchKv & kv, const MakeModelParams & p) {
    // MLA, shaped like the real converter output but tiny: K = [latent | rope], V = latent, one
    // cached KV "head" (MQA over the latent); decompressed heads are `d` (nope) + `d` (rope) wide.
    const int d = p.n_embd / p.n_head;
    const int rank = p.n_embd / 2;
    kv.u32("attention.head_count_kv", 1);
    kv.u32("attention.q_lora_rank", rank);  // non-"lite": q goes through wq_a/wq_b
    kv.u32("attention.kv_lora_rank", rank);
    kv.u32("rope.dimension_count", d);
    kv.u32("attention.key_length", rank + d);
    kv.u32("attention.value_length", rank);
    kv.u32("attention.key_length_mla", 2 * d);
    kv.u32("attention.value_length_mla", d);
    // V3-style routing: layer 0 dense, sigmoid gating + exp_probs_b (zeroed) for selection, weights
    // renormalised over the top-k and scaled, one always-on shared expert.
    kv.u32("leading_dense_block_count", 1);
    kv.u32("expert_feed_forward_length", p.n_ff);
    kv.u32("expert_shared_count", 1);
    kv.u32("expert_gating_func", 2);  // 1 = softmax, 2 = sigmoid
    kv.flag("expert_weights_norm", true);
    kv.f32("expert_weights_scale", 2.5f);
}

struct ArchSpec {
    const char * name;        // general.architecture
    const char * dense_arch;  // what dense=true writes: a non-MoE architecture of the same family
    int min_layers;           // deepseek2 needs a MoE layer after its leading dense one
    ArchKvFn add_kv;
};

constexpr ArchSpec k_archs[] = {
    {"olmoe", "llama", 1, kv_olmoe},         {"qwen3moe", "qwen3", 1, kv_qwen3moe},
    {"phimoe", "llama", 1, kv_phimoe},       {"gpt-oss", "llama", 1, kv_gpt_oss},
    {"llama", "llama", 1, kv_llama},         {"qwen2moe", "qwen2", 1, kv_qwen2moe},
    {"deepseek2", "llama", 2, kv_deepseek2},
};

const ArchSpec * find_arch(const std::string & name) {
    for (const auto & a : k_archs)
        if (name == a.name) return &a;
    return nullptr;
}

}  // namespace

namespace detail {

// ---------------------------------------------------------------------------------------------
// Tokenizer: SentencePiece ("llama") with byte fallback, so any UTF-8 text tokenizes.

SpmVocab make_vocab() {
    SpmVocab v = spm_base_vocab();
    // Frequent pieces. SPM merges adjacent pieces pairwise, so a word piece is only reachable when
    // its prefixes are pieces too: add every prefix. Earlier pieces get higher scores (merge first).
    const std::string sp = "\xE2\x96\x81";  // "▁", SentencePiece's space
    std::vector<std::string> pieces = {sp};
    for (char c = 33; c < 127; ++c) pieces.emplace_back(1, c);
    for (char c = 'a'; c <= 'z'; ++c) pieces.push_back(sp + c);
    for (char c = 'A'; c <= 'Z'; ++c) pieces.push_back(sp + c);
    for (const char * s :
         {"ä", "ö", "ü", "ß", "é", "è", "à", "ç", "ñ", "á", "í", "ó", "ú", "ê", "’", "“", "”", "—"})
        pieces.emplace_back(s);
    for (const char * s :
         {"th", "he", "in", "er", "an", "re", "on", "at",  "en",  "nd",  "ti",  "es",  "or",  "te",  "of",
          "ed", "is", "it", "al", "ar", "st", "to", "nt",  "ng",  "se",  "ha",  "as",  "ou",  "io",  "le",
          "ve", "co", "me", "de", "hi", "ri", "ro", "ic",  "ne",  "ea",  "ra",  "ce",  "li",  "ch",  "ll",
          "be", "ma", "si", "om", "ur", "ie", "ei", "sch", "ung", "ent", "ion", "ing", "que", "ment"})
        pieces.emplace_back(s);
    for (const char * w :
         {"the",   "of",     "and",   "to",     "in",   "is",    "that", "for",   "it",    "with",
          "as",    "was",    "on",    "be",     "at",   "by",    "this", "are",   "from",  "or",
          "an",    "not",    "but",   "which",  "have", "he",    "she",  "they",  "we",    "you",
          "his",   "her",    "their", "one",    "all",  "there", "can",  "will",  "would", "has",
          "had",   "were",   "been",  "more",   "when", "what",  "who",  "world", "Hello", "hello",
          "model", "expert", "time",  "people", "The",  "der",   "die",  "und",   "das",   "ist",
          "nicht", "le",     "la",    "les",    "et",   "des",   "est",  "el",    "los",   "que",
          "de",    "en",     "un",    "una",    "il",   "di",    "che",  "per"}) {
        const std::string word = sp + w;
        for (size_t n = sp.size() + 1; n <= word.size(); ++n) pieces.push_back(word.substr(0, n));
    }
    std::set<std::string> seen;
    for (const auto & piece : pieces) {
        if (!seen.insert(piece).second) continue;
        v.add(piece, -static_cast<float>(seen.size()), SpmVocab::normal);
    }
    return v;
}

}  // namespace detail

namespace {
using detail::make_vocab;

// Hyperparameters every architecture reads (or tolerates).
void write_common_kv(gguf_context * ctx, const std::string & arch, const MakeModelParams & p, int n_vocab) {
    gguf_set_val_str(ctx, "general.architecture", arch.c_str());
    gguf_set_val_str(ctx, "general.name", fmt::format("routescope-tiny-{}", arch).c_str());
    ArchKv kv(ctx, arch);
    kv.u32("vocab_size", n_vocab);
    kv.u32("context_length", p.n_ctx);
    kv.u32("embedding_length", p.n_embd);
    kv.u32("block_count", p.n_layer);
    kv.u32("feed_forward_length", p.n_ff);
    kv.u32("attention.head_count", p.n_head);
    kv.u32("attention.head_count_kv", p.n_head);  // q/k norms of olmoe are n_embd wide: no GQA
    kv.f32("attention.layer_norm_rms_epsilon", 1e-5f);
    kv.f32("rope.freq_base", 10000.0f);
    if (!p.dense) {
        kv.u32("expert_count", p.n_expert);
        kv.u32("expert_used_count", p.top_k);
    }
}

}  // namespace

namespace detail {

// ---------------------------------------------------------------------------------------------
// Tensor data: deterministic across platforms and standard libraries (no std::hash, no
// std::normal_distribution): FNV-1a of the name, splitmix64, Box-Muller.

uint64_t fnv1a(std::string_view s) {
    uint64_t h = 14695981039346656037ull;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
}

uint64_t splitmix64(uint64_t & state) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

enum class Fill { random, zero, one, negative };

// Optional tensors that llama.cpp creates anyway must be neutral (scales 1, biases 0), or the file
// would be a different model from the one its architecture name promises.
Fill fill_for(std::string_view name, bool random_probs_b) {
    auto ends = [&](std::string_view suffix) { return name.ends_with(suffix); };
    // Mamba's A (state decay) must be negative or the recurrent state blows up (llama.cpp's
    // test-llama-archs.cpp does the same). None of the seven hand-written archs has one.
    if (ends(".ssm_a")) return Fill::negative;
    // DeepSeek-V3-style selection bias, random only when asked for (the variant under test).
    if (random_probs_b && ends("exp_probs_b.bias")) return Fill::random;
    if (ends("_norm.weight") || ends(".scale") || ends(".input_scale") || name.starts_with("rope_"))
        return Fill::one;
    // The gpt-oss router bias stays random so the biased-router path is exercised; every other
    // bias (including deepseek2's exp_probs_b, so selection is the plain top-k) is zero.
    if (ends(".bias") && !ends("ffn_gate_inp.bias")) return Fill::zero;
    return Fill::random;
}

void set_tensor_data(ggml_tensor * t, void * userdata) {
    auto & fp = *static_cast<FillState *>(userdata);
    fp.tensors.push_back(t);
    if (t->type == GGML_TYPE_I32) {
        // deepseek4's hash-routing table ffn_gate_tid2eid: per token, top_k distinct expert ids.
        std::vector<int32_t> ids(static_cast<size_t>(ggml_nelements(t)));
        const int64_t k = t->ne[0];
        uint64_t state = fp.seed ^ fnv1a(t->name);
        for (int64_t row = 0; row < t->ne[1]; ++row) {
            const auto first = static_cast<int64_t>(splitmix64(state) % static_cast<uint64_t>(fp.n_expert));
            for (int64_t j = 0; j < k; ++j)
                ids[static_cast<size_t>(row * k + j)] = static_cast<int32_t>((first + j) % fp.n_expert);
        }
        ggml_backend_tensor_set(t, ids.data(), 0, ggml_nbytes(t));
        return;
    }
    RS_ASSERT(t->type == GGML_TYPE_F32);
    std::vector<float> data(static_cast<size_t>(ggml_nelements(t)));
    const Fill fill = fill_for(t->name, fp.random_probs_b);
    if (fill == Fill::one) std::fill(data.begin(), data.end(), 1.0f);
    if (fill == Fill::random || fill == Fill::negative) {
        uint64_t state = fp.seed ^ fnv1a(t->name);
        constexpr double two_pi = 6.283185307179586;
        for (size_t i = 0; i < data.size(); i += 2) {
            const double u1 = static_cast<double>((splitmix64(state) >> 11) + 1) * 0x1.0p-53;  // (0, 1]
            const double u2 = static_cast<double>(splitmix64(state) >> 11) * 0x1.0p-53;        // [0, 1)
            const double r = std::sqrt(-2.0 * std::log(u1)) * fp.stdev;
            data[i] = static_cast<float>(r * std::cos(two_pi * u2));
            if (i + 1 < data.size()) data[i + 1] = static_cast<float>(r * std::sin(two_pi * u2));
        }
        if (fill == Fill::negative)
            for (float & x : data) x = -std::fabs(x) - 1e-3f;
    }
    ggml_backend_tensor_set(t, data.data(), 0, ggml_nbytes(t));
}

// ---------------------------------------------------------------------------------------------
// llama.cpp plumbing

QuietLlamaLog::QuietLlamaLog() {
    llama_log_get(&prev_cb_, &prev_ud_);
    if (std::getenv("RS_VERBOSE") == nullptr)
        llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
}
QuietLlamaLog::~QuietLlamaLog() {
    llama_log_set(prev_cb_, prev_ud_);
}

ggml_type parse_router_type(const std::string & name, const std::string & arch) {
    if (name.empty() || name == "f32") return GGML_TYPE_F32;
    if (name == "f16") return GGML_TYPE_F16;
    if (name == "bf16") return GGML_TYPE_BF16;
    throw Error(fmt::format("make-model: {}: unknown router type '{}' (use f32, f16 or bf16)", arch, name));
}

void init_backend_once() {
    static std::once_flag backend_once;
    std::call_once(backend_once, [] { llama_backend_init(); });
}

void build_and_write(gguf_context * meta, const std::string & arch, FillState & fill,
                     const std::string & path, gguf_context * init_meta) {
    // CPU only (empty device list): the GGUF writer reads tensor->data, so it must be host memory.
    ggml_backend_dev_t no_devices[] = {nullptr};
    llama_model_params mp = llama_model_default_params();
    mp.devices = no_devices;
    mp.n_gpu_layers = 0;
    // MTP/nextn tensors are created only when asked for; skipped ones abort init_from_user (the
    // loader asserts a buffer type for them). No effect on files without nextn layers.
    mp.load_mtp = true;
    mp.progress_callback = [](float, void *) { return true; };  // no progress dots on stderr
    std::unique_ptr<llama_model, decltype(&llama_model_free)> model(
        llama_model_init_from_user(init_meta ? init_meta : meta, set_tensor_data, &fill, mp),
        llama_model_free);
    if (!model)
        throw Error(fmt::format(
            "make-model: llama.cpp could not build the {} model (set RS_VERBOSE=1 for its log)", arch));

    // Router weights stored as f16/bf16: converted copies in their own context, alive until written.
    std::unique_ptr<ggml_context, decltype(&ggml_free)> converted(nullptr, ggml_free);
    if (fill.router_type != GGML_TYPE_F32) {
        size_t bytes = ggml_tensor_overhead() * 256;
        for (ggml_tensor * t : fill.tensors)
            if (std::string_view(t->name).ends_with("ffn_gate_inp.weight"))
                bytes += ggml_row_size(fill.router_type, ggml_nelements(t)) + 64;
        converted.reset(ggml_init({bytes, nullptr, /*no_alloc=*/false}));
    }
    for (ggml_tensor * t : fill.tensors) {
        // Layers share rope_freqs / rope_factors_* (created per layer under one name): write once.
        if (gguf_find_tensor(meta, t->name) >= 0) continue;
        // Quantisation scales (all 1) are optional and absent from real F32/BF16 checkpoints; left
        // in, they add MUL nodes to the expert FFN graph of some archs (qwen3moe, llama).
        const std::string_view name = t->name;
        if (name.ends_with(".scale") || name.ends_with(".input_scale")) continue;
        if (converted && name.ends_with("ffn_gate_inp.weight")) {
            ggml_tensor * c = ggml_new_tensor(converted.get(), fill.router_type, ggml_n_dims(t), t->ne);
            ggml_set_name(c, t->name);
            const auto * src = static_cast<const float *>(t->data);
            if (fill.router_type == GGML_TYPE_F16)
                ggml_fp32_to_fp16_row(src, static_cast<ggml_fp16_t *>(c->data), ggml_nelements(t));
            else
                ggml_fp32_to_bf16_row(src, static_cast<ggml_bf16_t *>(c->data), ggml_nelements(t));
            gguf_add_tensor(meta, c);
            continue;
        }
        gguf_add_tensor(meta, t);
    }
    if (!gguf_write_to_file(meta, path.c_str(), /*only_meta=*/false))
        throw Error(fmt::format("make-model: could not write '{}' (does the directory exist?)", path));
}

}  // namespace detail

namespace {

void validate(const MakeModelParams & p, const ArchSpec & spec) {
    auto fail = [](const std::string & msg) { throw Error("make-model: " + msg); };
    const int min_layers = p.dense ? 1 : spec.min_layers;
    if (p.n_layer < min_layers || p.n_layer > 256)
        fail(fmt::format("{} needs n_layer in [{}, 256], got {}", spec.name, min_layers, p.n_layer));
    if (p.n_expert < 2 || p.n_expert > 256)
        fail(fmt::format("n_expert must be in [2, 256], got {}", p.n_expert));
    if (p.top_k < 1 || p.top_k > p.n_expert)
        fail(fmt::format("top_k must be in [1, n_expert={}], got {}", p.n_expert, p.top_k));
    if (p.n_head < 1 || p.n_embd < 1 || p.n_embd % p.n_head != 0)
        fail(fmt::format("n_embd ({}) must be a positive multiple of n_head ({})", p.n_embd, p.n_head));
    if ((p.n_embd / p.n_head) % 2 != 0)  // RoPE rotates pairs
        fail(fmt::format("head size n_embd/n_head = {} must be even", p.n_embd / p.n_head));
    if (p.n_embd > 8192 || p.n_ff < 1 || p.n_ff > 32768)
        fail(fmt::format("sizes out of range: n_embd {} (max 8192), n_ff {} (1..32768)", p.n_embd, p.n_ff));
    // Everything is F32 in memory and on disk: refuse what is no longer a "tiny" model.
    const double n_params = double(p.n_layer) * (p.n_expert + 2) * 3 * p.n_embd * p.n_ff +
                            double(p.n_layer) * 4 * p.n_embd * p.n_embd;
    if (n_params > 256e6)
        fail(fmt::format("~{:.0f}M parameters is too large for a test model (limit 256M)", n_params / 1e6));
    if (p.n_ctx < 1) fail(fmt::format("n_ctx must be positive, got {}", p.n_ctx));
    if (!(p.stdev > 0.0f) || !std::isfinite(p.stdev))
        fail(fmt::format("stdev must be positive, got {}", p.stdev));
}

}  // namespace

std::vector<std::string> make_model_archs() {
    std::vector<std::string> out;
    for (const auto & a : k_archs) out.emplace_back(a.name);
    return out;
}

std::vector<std::string> make_model_all_archs() {
    std::vector<std::string> out = make_model_archs();
    for (auto & a : detail::generic_archs()) out.push_back(std::move(a));
    return out;
}

void make_model(const MakeModelParams & p, const std::string & path) {
    const ArchSpec * spec = find_arch(p.arch);
    // The seven hand-written architectures keep their exact files; every other MoE architecture
    // of llama.cpp goes through the generic writer (make_model_archs.cpp).
    if (spec == nullptr && detail::make_model_generic(p, path)) return;

    if (spec == nullptr) {
        std::string known;
        for (const auto & a : make_model_all_archs()) known += (known.empty() ? "" : ", ") + a;
        throw Error(fmt::format("make-model: unknown arch '{}' (known: {})", p.arch, known));
    }
    validate(p, *spec);

    detail::init_backend_once();
    detail::QuietLlamaLog quiet;

    const std::string arch = p.dense ? spec->dense_arch : spec->name;
    std::unique_ptr<gguf_context, decltype(&gguf_free)> meta(gguf_init_empty(), gguf_free);
    const SpmVocab vocab = make_vocab();
    write_common_kv(meta.get(), arch, p, static_cast<int>(vocab.tokens.size()));
    if (!p.dense) {
        ArchKv kv(meta.get(), arch);
        spec->add_kv(kv, p);
    }
    write_spm_vocab(meta.get(), vocab);
    detail::FillState fill{p.seed,    p.stdev, false, {}, detail::parse_router_type(p.router_type, p.arch),
                           p.n_expert};
    detail::build_and_write(meta.get(), arch, fill, path);
}

}  // namespace rs
