// The generic model writer: every MoE architecture of llama.cpp v0.5.0 beyond the seven
// hand-written ones in make_model.cpp (see routescope/make_model.h).
//
// Port of llama.cpp's tests/test-llama-archs.cpp (get_gguf_ctx) to the public API: one universal
// superset of hyperparameters, written as plain GGUF keys (the LLM_KV_* names of
// src/llama-arch.cpp, "%s." = the architecture), which every architecture's loader picks from;
// llama_model_init_from_user then creates the tensors the architecture needs. Differences from
// upstream, so the models route like real ones: 8 experts top-2 (upstream 2/2, where routing is
// trivial), neutral norms/biases (make_model.cpp's fill rules), small widths, 4 layers, the
// byte-fallback SentencePiece vocabulary (so real text traces), and options for the variants
// that matter (leading dense layers, interleaving, shared experts, selection bias + expert
// groups, MTP/nextn blocks, hash layers).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <gguf.h>
#include <llama.h>

#include "make_model_internal.h"
#include "routescope/common.h"
#include "routescope/spm_vocab.h"

namespace rs::detail {
namespace {

// Writes `<arch>.<key>` values with the GGUF types llama.cpp's loader expects (llama-model-saver:
// u32, f32, bool, arrays of u32 / f32 / u64).
class Kv {
  public:
    Kv(gguf_context * ctx, std::string arch) : ctx_(ctx), arch_(std::move(arch)) {}
    void u32(std::string_view key, uint32_t v) { gguf_set_val_u32(ctx_, name(key).c_str(), v); }
    void f32(std::string_view key, float v) { gguf_set_val_f32(ctx_, name(key).c_str(), v); }
    void flag(std::string_view key, bool v) { gguf_set_val_bool(ctx_, name(key).c_str(), v); }
    void u32s(std::string_view key, const std::vector<uint32_t> & v) {
        gguf_set_arr_data(ctx_, name(key).c_str(), GGUF_TYPE_UINT32, v.data(), v.size());
    }
    void f32s(std::string_view key, const std::vector<float> & v) {
        gguf_set_arr_data(ctx_, name(key).c_str(), GGUF_TYPE_FLOAT32, v.data(), v.size());
    }
    void u64s(std::string_view key, const std::vector<uint64_t> & v) {
        gguf_set_arr_data(ctx_, name(key).c_str(), GGUF_TYPE_UINT64, v.data(), v.size());
    }
    void remove(std::string_view key) { gguf_remove_key(ctx_, name(key).c_str()); }

  private:
    std::string name(std::string_view key) const {
        // A few keys (xielu.*) are not prefixed by the architecture.
        return key.starts_with("xielu.") ? std::string(key) : arch_ + "." + std::string(key);
    }
    gguf_context * ctx_;
    std::string arch_;
};

// Every llama.cpp v0.5.0 architecture with MoE layers, other than the seven of make_model.cpp:
// upstream's moe_mandatory() and moe_implemented() lists (test-llama-archs.cpp), cross-checked
// against src/models/*.cpp that call build_moe_ffn (which adds jamba, granitehybrid,
// granite_swa, nemotron_h, nemotron_h_moe). Left out: encoders (nomic-bert-moe, llama-embed),
// gemma4 (upstream skips it: ISWA fixture), dflash/eagle3 (draft heads, not models).
constexpr const char * k_generic[] = {
    "llama4",      "cohere2moe",    "grok",        "qwen3next",    "qwen3vlmoe",     "qwen35moe",
    "qwen4exp",    "dbrx",          "arctic",      "deepseek",     "deepseek32",     "dots3note",
    "deepseek4",   "glm4moe",       "glm-dsa",     "exaone-moe",   "bailingmoe",     "bailingmoe2",
    "bailingmoe3", "dots1",         "afmoe",       "ernie4_5",     "ernie4_5-moe",   "hunyuan-moe",
    "hy_v3",       "hy_v4",         "lfm2moe",     "smallthinker", "llada-moe",      "grovemoe",
    "minimax-01",  "minimax-m2",    "minimax-m3",  "rnd1",         "paddleocr",      "mimo2",
    "kimi-linear", "kimi-k3",       "step35",      "mistral4",     "mellum",         "laguna",
    "maple",       "refact",        "minicpm",     "granite",      "granitemoe",     "mistral3",
    "jamba",       "granitehybrid", "granite_swa", "nemotron_h",   "nemotron_h_moe",
};

bool in(std::string_view arch, std::initializer_list<std::string_view> names) {
    return std::find(names.begin(), names.end(), arch) != names.end();
}

// MLA attention (DeepSeek-V2 family): K = [latent | rope], V = latent.
bool is_mla(std::string_view a) {
    return in(a, {"deepseek32", "glm-dsa", "dots3note", "kimi-linear", "bailingmoe3", "kimi-k3", "mistral4",
                  "hy_v4"});
}
// Hybrid layouts written as per-layer head counts: a layer with 0 heads is recurrent (Mamba,
// short conv, KDA ...).
bool per_layer_heads(std::string_view a) {
    return in(a, {"jamba", "nemotron_h", "nemotron_h_moe", "granitehybrid", "lfm2moe", "kimi-linear",
                  "bailingmoe3", "kimi-k3"});
}
// Architectures whose MTP / nextn blocks llama.cpp builds (it creates their tensors when asked,
// llama_model_params::load_mtp; routescope loads with it off). exaone-moe, bailingmoe2 and
// dots3note read nextn_predict_layers too but always skip the blocks' tensors (TENSOR_SKIP), which
// llama_model_init_from_user cannot do (it asserts a buffer type), so they are refused.
bool has_mtp(std::string_view a) {
    return in(
        a, {"bailingmoe3", "cohere2moe", "deepseek32", "deepseek4", "glm-dsa", "glm4moe", "hy_v3", "kimi-k3",
            "kimi-linear", "mimo2", "nemotron_h", "nemotron_h_moe", "qwen35moe", "qwen3next", "step35"});
}
bool swa_pattern_array(std::string_view a) {
    return in(a, {"cohere2moe", "mimo2", "step35", "muse-glimmer", "granite_swa", "dots3note", "maple"});
}

struct Shape {
    int n_layer, n_embd, n_head, n_head_kv, n_ff;
};

Shape shape_for(const MakeModelParams & p) {
    Shape s{p.n_layer, p.n_embd, p.n_head, p.n_head, p.n_ff};
    if (p.arch == "afmoe") s.n_head_kv = std::max(1, s.n_head / 2);  // GQA (upstream: 4 heads, 2 kv)
    if (is_mla(p.arch)) s.n_head_kv = 1;  // MLA caches one latent "head" (MQA over the latent)
    if (p.arch == "deepseek4") {
        // The KV cache's Hadamard rotation exists for head sizes 64, 128, ... only (upstream: 512/8).
        s.n_head = std::max(1, s.n_embd / 64);
        s.n_head_kv = 1;
    }
    return s;
}

void write_kv(Kv & kv, const MakeModelParams & p, const Shape & s, int n_vocab) {
    const std::string & a = p.arch;
    const uint32_t n_layer = static_cast<uint32_t>(s.n_layer);
    const uint32_t n_embd = static_cast<uint32_t>(s.n_embd);
    const uint32_t n_head = static_cast<uint32_t>(s.n_head);
    const uint32_t n_ff = static_cast<uint32_t>(s.n_ff);
    const uint32_t head = n_embd / n_head;
    const uint32_t n_ctx = static_cast<uint32_t>(p.n_ctx);

    kv.u32("vocab_size", static_cast<uint32_t>(n_vocab));
    kv.u32("context_length", n_ctx);
    kv.u32("embedding_length", n_embd);
    kv.u32("features_length", n_embd);
    kv.u32("block_count", n_layer);
    kv.u32("leading_dense_block_count", static_cast<uint32_t>(p.dense_lead < 0 ? 1 : p.dense_lead));
    if (p.nextn > 0) kv.u32("nextn_predict_layers", static_cast<uint32_t>(p.nextn));

    if (in(a, {"nemotron_h", "nemotron_h_moe"})) {
        // layer 0 attention, layer 1 Mamba-2, the rest MoE FFN blocks (n_ff > 0, no heads).
        std::vector<uint32_t> ff(n_layer, n_ff), heads(n_layer, 0);
        ff[0] = ff[1] = 0;
        heads[0] = n_head;
        // An MTP block is attention + MoE in one layer (nemotron-h.cpp): heads and n_ff both set.
        for (uint32_t il = n_layer - static_cast<uint32_t>(p.nextn); il < n_layer; ++il) heads[il] = n_head;
        kv.u32s("feed_forward_length", ff);
        kv.u32s("attention.head_count", heads);
        kv.u32s("attention.head_count_kv", heads);
    } else {
        kv.u32("feed_forward_length", n_ff);
        if (per_layer_heads(a)) {
            // Odd layers recurrent (0 heads), even layers attention.
            std::vector<uint32_t> heads(n_layer), heads_kv(n_layer);
            for (uint32_t il = 0; il < n_layer; ++il) {
                heads[il] = il % 2 == 1 ? 0 : n_head;
                heads_kv[il] = il % 2 == 1 ? 0 : static_cast<uint32_t>(s.n_head_kv);
            }
            kv.u32s("attention.head_count", heads);
            kv.u32s("attention.head_count_kv", heads_kv);
        } else {
            kv.u32("attention.head_count", n_head);
            kv.u32("attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
        }
    }
    kv.flag("use_parallel_residual", false);
    kv.f32("logit_scale", 1.0f);
    kv.u32("time_mix_extra_dim", 64);
    kv.u32("time_decay_extra_dim", 128);
    kv.u32("full_attention_interval", 2);
    kv.f32("attention.max_alibi_bias", 8.0f);

    if (a == "deepseek4") {
        kv.u32("attention.key_length", head);
        kv.u32("attention.value_length", head);
        kv.u32("rope.dimension_count", head / 2);
    } else if (is_mla(a)) {
        // Tiny MLA like make_model.cpp's deepseek2: latent rank n_embd/2, rope `head` wide.
        const uint32_t rank = n_embd / 2;
        kv.u32("attention.key_length", rank + head);
        kv.u32("attention.value_length", rank);
        kv.u32("rope.dimension_count", head);
        kv.u32("attention.key_length_mla", 2 * head);
        kv.u32("attention.value_length_mla", head);
        if (a == "dots3note") {
            kv.u32("attention.kv_lora_rank_swa", rank);
            kv.u32("attention.key_length_swa", rank + head);
            kv.u32("attention.value_length_swa", rank);
            kv.u32("attention.key_length_mla_swa", 2 * head);
            kv.u32("attention.value_length_mla_swa", head);
            kv.f32("rope.freq_base_swa", 10000.0f);
            std::vector<uint32_t> types(n_layer);
            for (uint32_t il = 0; il < n_layer; ++il) types[il] = il % 2 ? 0 : 1;
            kv.u32s("attention.indexer.types", types);
        }
    }
    kv.f32("attention.clamp_kqv", 1.0f);
    kv.f32("attention.layer_norm_epsilon", 1e-5f);
    kv.f32("attention.layer_norm_rms_epsilon", 1e-5f);
    kv.f32("attention.group_norm_epsilon", 1e-5f);
    kv.u32("attention.group_norm_groups", 8);
    kv.u32("attention.q_lora_rank", a == "deepseek4" ? 64 : n_embd / 2);
    kv.u32("attention.kv_lora_rank", n_embd / 2);
    kv.u32("attention.relative_buckets_count", 8);
    kv.u32("attention.sliding_window", 128);
    kv.f32("rope.freq_base", 10000.0f);

    if (swa_pattern_array(a)) {
        std::vector<uint32_t> pattern(n_layer);
        for (uint32_t il = 0; il < n_layer; ++il) pattern[il] = il % 2;
        kv.u32s("attention.sliding_window_pattern", pattern);
    } else {
        kv.u32("attention.sliding_window_pattern", 2);
    }

    if (a == "qwen4exp") {
        kv.u32("hyper_connection.count", 4);
        kv.u32("hyper_connection.low_rank", 8);
        kv.u32s("attention.compress_ratios", std::vector<uint32_t>(n_layer, 4));
        const uint32_t ngram = 3, heads_per_ngram = 2, ple_heads = (ngram - 1) * heads_per_ngram;
        std::vector<uint64_t> offsets(ple_heads), sizes(ple_heads, static_cast<uint64_t>(n_vocab));
        for (uint32_t h = 0; h < ple_heads; ++h) offsets[h] = uint64_t(h) * static_cast<uint64_t>(n_vocab);
        kv.u32s("ple.layers", {0});
        kv.u32("ple.ngram_size", ngram);
        kv.u32("ple.heads_per_ngram", heads_per_ngram);
        kv.u32("ple.conv_kernel", 4);
        kv.u32("ple.eos_token_id", 2);
        kv.u32("embedding_length_per_layer_input", n_embd / ple_heads);
        kv.u64s("ple.layer_multipliers", {1, 3, 5});
        kv.u64s("ple.head_offsets", offsets);
        kv.u64s("ple.head_vocab_sizes", sizes);
    }
    // DSA "lightning indexer" (deepseek32, glm-dsa, dots3note, deepseek4, hy_v4): upstream's 64
    // heads of 128 (its Hadamard rotation needs a power-of-two width >= 64); minimax-m3 keeps one
    // indexer head per GQA head; qwen4exp ropes indexer keys with the main rotary width.
    kv.u32("attention.indexer.head_count", a == "minimax-m3" ? n_head : 64);
    kv.u32("attention.indexer.key_length", a == "qwen4exp" || a == "minimax-m3" ? head : 128);
    // As upstream: a top-k larger than the context selects everything (deterministic indexers).
    kv.u32("attention.indexer.top_k", 131072);
    kv.u32("attention.indexer.block_size", 4);
    kv.u32("attention.indexer.local_blocks", 1);
    kv.u32s("rope.dimension_sections", {head / 4, head / 4, head / 4, head / 4});

    if (a == "hy_v4") {
        kv.u32("hyper_connection.count", 4);
        kv.f32("hyper_connection.epsilon", 1.0e-6f);
        kv.f32("hyper_connection.magnitude", 2.0f);
        kv.f32("swiglu_clamp_exp", 10.0f);
        kv.f32("expert_weights_scale", 1.0f);
        kv.flag("expert_weights_norm", true);
        std::vector<uint32_t> types(n_layer);
        for (uint32_t il = 0; il < n_layer; ++il) types[il] = il % 2 ? 0 : 1;
        kv.u32s("attention.indexer.types", types);
    }
    if (a == "deepseek4") {
        kv.u32("attention.output_group_count", std::min<uint32_t>(8, n_head));
        kv.u32("attention.output_lora_rank", 32);
        std::vector<uint32_t> ratios(n_layer, 0);
        if (n_layer > 2) ratios[2] = 4;
        if (n_layer > 3) ratios[3] = 128;
        kv.u32s("attention.compress_ratios", ratios);
        kv.f32("attention.compress_rope_freq_base", 160000.0f);
        kv.u32("hyper_connection.count", 4);
        kv.u32("hyper_connection.sinkhorn_iterations", 2);
        kv.f32("hyper_connection.epsilon", 1.0e-6f);
        kv.u32("hash_layer_count", static_cast<uint32_t>(p.hash_layers));
        kv.f32("swiglu_clamp_exp", 10.0f);
        kv.f32("expert_weights_scale", 1.0f);
        kv.flag("expert_weights_norm", true);
    }
    if (a == "maple") kv.f32("swiglu_clamp_exp", 7.0f);

    // The MoE block: realistic routing (8 experts top-2 by default), one shared expert.
    kv.u32("expert_feed_forward_length", n_ff);
    kv.u32("expert_shared_feed_forward_length", std::max(1u, n_ff / 2));
    kv.u32("expert_latent_length", n_ff);
    kv.u32("interleave_moe_layer_step", static_cast<uint32_t>(p.moe_step > 0 ? p.moe_step : 2));
    if (p.moe_step > 0) kv.u32("moe_every_n_layers", static_cast<uint32_t>(p.moe_step));
    kv.u32("expert_count", static_cast<uint32_t>(p.n_expert));
    kv.u32("expert_used_count", static_cast<uint32_t>(p.top_k));
    kv.u32("expert_shared_count", static_cast<uint32_t>(p.n_shared < 0 ? 1 : p.n_shared));
    // 1 softmax, 2 sigmoid, 3 softmax-weight, 4 sqrt-softplus (deepseek4); upstream uses sigmoid
    // everywhere, which exercises the biased/normalised path. --gating overrides.
    const uint32_t gating = p.gating > 0 ? static_cast<uint32_t>(p.gating) : (a == "deepseek4" ? 4u : 2u);
    kv.u32("expert_gating_func", gating);
    kv.f32("expert_group_scale", 1.0f);
    kv.u32("experts_per_group", 1);
    if (p.n_group > 0) {
        kv.u32("expert_group_count", static_cast<uint32_t>(p.n_group));
        kv.u32("expert_group_used_count", static_cast<uint32_t>(p.n_group_used));
    }

    kv.u32("posnet.embedding_length", n_embd);
    kv.u32("posnet.block_count", n_layer);
    kv.u32("convnext.embedding_length", n_embd);
    kv.u32("convnext.block_count", n_layer);
    kv.f32("xielu.alpha_n", 1.0f);
    kv.f32("xielu.alpha_p", 1.0f);
    kv.f32("xielu.beta", 1.0f);
    kv.f32("xielu.eps", 1.0e-7f);
    const bool gdn = in(a, {"qwen3next", "qwen35moe", "qwen4exp"});
    kv.u32("ssm.inner_size", gdn ? 128 : 2 * n_embd);
    kv.u32("ssm.conv_kernel", 4);
    kv.u32("ssm.state_size", gdn ? 32 : 16);
    kv.u32("ssm.time_step_rank", n_head);
    kv.u32("ssm.group_count", 2);
    kv.u32("kda.head_dim", 32);
    kv.flag("kda.safe_gate", true);
    kv.f32("kda.gate_lower_bound", -5.0f);
    if (a == "bailingmoe3") {
        // Per layer, as upstream's 2-layer {0, 4} / {0, 5}: no clamp on even layers.
        std::vector<float> clamp_exp(n_layer), clamp_shexp(n_layer);
        for (uint32_t il = 0; il < n_layer; ++il) {
            clamp_exp[il] = il % 2 ? 4.0f : 0.0f;
            clamp_shexp[il] = il % 2 ? 5.0f : 0.0f;
        }
        kv.f32s("swiglu_clamp_exp", clamp_exp);
        kv.f32s("swiglu_clamp_shexp", clamp_shexp);
        kv.remove("kda.safe_gate");  // as upstream's backend test does
    }
    kv.u32("wkv.head_size", head);
    kv.u32("shortconv.l_cache", 3);
    kv.f32("residual_scale", 3.5565588200778455f);
    kv.u32("attn_res.block_size", 12);
    kv.f32("activation.situ_beta", 4.0f);
    kv.f32("activation.situ_linear_beta", 25.0f);
}

void validate_generic(const MakeModelParams & p) {
    auto fail = [&](const std::string & msg) { throw Error(fmt::format("make-model: {}: {}", p.arch, msg)); };
    if (p.dense) fail("--dense is only for the seven hand-written architectures");
    if (p.n_layer < 2 || p.n_layer > 64) fail(fmt::format("n_layer must be in [2, 64], got {}", p.n_layer));
    if (p.n_expert < 2 || p.n_expert > 256)
        fail(fmt::format("n_expert must be in [2, 256], got {}", p.n_expert));
    if (p.top_k < 1 || p.top_k > p.n_expert)
        fail(fmt::format("top_k must be in [1, n_expert={}], got {}", p.n_expert, p.top_k));
    if (p.n_head < 1 || p.n_embd < 8 || p.n_embd % p.n_head != 0 || (p.n_embd / p.n_head) % 8 != 0)
        fail(fmt::format("n_embd ({}) must be a multiple of 8 * n_head ({})", p.n_embd, p.n_head));
    if (p.n_embd > 4096 || p.n_ff < 2 || p.n_ff > 16384)
        fail(fmt::format("sizes out of range: n_embd {} (max 4096), n_ff {} (2..16384)", p.n_embd, p.n_ff));
    if (p.n_ctx < 1) fail(fmt::format("n_ctx must be positive, got {}", p.n_ctx));
    if (!(p.stdev > 0.0f) || !std::isfinite(p.stdev))
        fail(fmt::format("stdev must be positive, got {}", p.stdev));
    if (p.dense_lead >= p.n_layer)
        fail(fmt::format("dense_lead {} leaves no MoE layer of {}", p.dense_lead, p.n_layer));
    if (p.nextn < 0 || p.nextn >= p.n_layer - 1)
        fail(fmt::format("nextn must be in [0, n_layer - 1), got {}", p.nextn));
    // deepseek4 drops nextn_predict_layers unless the file already holds blk.N.nextn.eh_proj, which
    // init_from_user's metadata cannot show it (its weight map is empty).
    if (p.nextn > 0 && p.arch == "deepseek4")
        fail(
            "llama.cpp keeps deepseek4's nextn blocks only when the file already has them, so they cannot be "
            "generated "
            "(use nextn 0)");
    if (p.nextn > 0 && in(p.arch, {"exaone-moe", "bailingmoe2", "dots3note"}))
        fail(
            "llama.cpp always skips this architecture's nextn blocks, so they cannot be generated (use nextn "
            "0)");
    if (p.nextn > 0 && !has_mtp(p.arch))
        fail("llama.cpp v0.5.0 has no MTP / nextn blocks for this architecture");
    if (p.nextn > 0 && p.hash_layers > p.n_layer - p.nextn - 1)
        fail("hash layers must leave a non-hash trunk layer before the nextn blocks");
    if (p.n_shared > 8 || p.moe_step < 0 || p.moe_step > p.n_layer)
        fail("n_shared must be <= 8, moe_step in [0, n_layer]");
    if (p.hash_layers < 0 || p.hash_layers > p.n_layer) fail("hash_layers must be in [0, n_layer]");
    if (p.arch == "deepseek4" && p.n_embd % 64 != 0)
        fail(fmt::format("n_embd must be a multiple of 64 (head size 64), got {}", p.n_embd));
    if (p.hash_layers > 0 && p.arch != "deepseek4") fail("hash layers exist only in deepseek4");
    if (p.gating < 0 || p.gating > 4)
        fail(fmt::format("gating must be 0 (arch default) or 1..4, got {}", p.gating));
    // llama.cpp GGML_ASSERTs these (abort, not an error): check them first.
    if (p.n_group != 0) {
        if (p.n_group < 2 || p.n_group >= p.n_expert || p.n_expert % p.n_group != 0)
            fail(fmt::format("n_group {} must divide n_expert {} and be in [2, n_expert)", p.n_group,
                             p.n_expert));
        if (p.n_group_used < 1 || p.n_group_used >= p.n_group)
            fail(fmt::format("n_group_used must be in [1, n_group), got {}", p.n_group_used));
        if (p.top_k > p.n_group_used * (p.n_expert / p.n_group))
            fail("top_k exceeds the experts of the used groups");
    }
}

}  // namespace

std::vector<std::string> generic_archs() {
    return {std::begin(k_generic), std::end(k_generic)};
}

bool make_model_generic(const MakeModelParams & p, const std::string & path) {
    if (std::find_if(std::begin(k_generic), std::end(k_generic),
                     [&](const char * a) { return p.arch == a; }) == std::end(k_generic))
        return false;
    validate_generic(p);
    parse_router_type(p.router_type, p.arch);
    init_backend_once();
    QuietLlamaLog quiet;

    std::unique_ptr<gguf_context, decltype(&gguf_free)> meta(gguf_init_empty(), gguf_free);
    const SpmVocab vocab = make_vocab();
    gguf_set_val_str(meta.get(), "general.architecture", p.arch.c_str());
    gguf_set_val_str(meta.get(), "general.name", fmt::format("routescope-tiny-{}", p.arch).c_str());
    Kv kv(meta.get(), p.arch);
    write_kv(kv, p, shape_for(p), static_cast<int>(vocab.tokens.size()));
    write_spm_vocab(meta.get(), vocab);

    FillState fill{p.seed,    p.stdev, p.selection_bias, {}, parse_router_type(p.router_type, p.arch),
                   p.n_expert};
    if (p.hash_layers == 0) {
        build_and_write(meta.get(), p.arch, fill, path);
        return true;
    }
    // deepseek4 hash layers route by a token -> expert-id table (ffn_gate_tid2eid, I32 {top_k,
    // n_vocab}); llama.cpp would create it as F32 unless the metadata already names its type.
    std::unique_ptr<gguf_context, decltype(&gguf_free)> init_meta(gguf_init_empty(), gguf_free);
    gguf_set_kv(init_meta.get(), meta.get());
    std::unique_ptr<ggml_context, decltype(&ggml_free)> shapes(
        ggml_init(
            {ggml_tensor_overhead() * static_cast<size_t>(p.hash_layers + 1), nullptr, /*no_alloc=*/true}),
        ggml_free);
    for (int il = 0; il < p.hash_layers; ++il) {
        ggml_tensor * t = ggml_new_tensor_2d(shapes.get(), GGML_TYPE_I32, p.top_k,
                                             static_cast<int64_t>(vocab.tokens.size()));
        ggml_format_name(t, "blk.%d.ffn_gate_tid2eid.weight", il);
        gguf_add_tensor(init_meta.get(), t);
    }
    build_and_write(meta.get(), p.arch, fill, path, init_meta.get());
    return true;
}

}  // namespace rs::detail
