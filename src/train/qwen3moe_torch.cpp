// The Qwen3-MoE family in libtorch (qwen3moe_torch.h): initialisation, forward pass, GGUF import/export.
//
// The forward follows llama.cpp's graph (src/models/qwen3moe.cpp, build_moe_ffn in src/llama-graph.cpp)
// operation by operation, so that one implementation checks the other:
//   x = embd[tok]
//   per block: a = RMSNorm(x)·w_attn_norm; q,k,v = a·Wqᵀ, a·Wkᵀ, a·Wvᵀ; q,k = RMSNorm per head ·w_{q,k}_norm;
//              q,k = RoPE-NeoX(q,k; pos, base); o = softmax(q·kᵀ/√D + causal)·v; x += o·Woᵀ
//              m = RMSNorm(x)·w_ffn_norm; z = m·W_rᵀ; p = softmax(z); (v_i, e_i) = top-k(p);
//              g_i = v_i / max(Σ v, 6.1e-5); x += Σ_i g_i · W_down,e_i (silu(W_gate,e_i m) ⊙ W_up,e_i m)
//   logits = RMSNorm(x)·w_out_norm · Eᵀ (tied) or · W_outᵀ
#include "qwen3moe_torch.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>

#include <fmt/format.h>
#include <ggml.h>
#include <gguf.h>

#include "routescope/common.h"

namespace rs {
namespace {

std::string blk(int il, const char * name) {
    return fmt::format("blk.{}.{}", il, name);
}

// RMSNorm over the last dimension (ggml_rms_norm: x / sqrt(mean(x²) + eps)), then the weight.
torch::Tensor rms_norm(const torch::Tensor & x, const torch::Tensor & w, float eps) {
    return x * torch::rsqrt(x.pow(2).mean(-1, true) + eps) * w;
}

// NeoX RoPE (ggml rope mode 2): dimension i pairs with i + D/2, angle pos · base^(−2i/D).
// x: [B, T, H, D]
torch::Tensor rope_neox(const torch::Tensor & x, float base) {
    const int64_t T = x.size(1), D = x.size(3), half = D / 2;
    const auto inv_freq = torch::pow(base, -torch::arange(0, half, torch::kFloat64) * 2.0 / (double)D);
    const auto ang =
        torch::outer(torch::arange(0, T, torch::kFloat64), inv_freq).to(x.scalar_type());  // [T, D/2]
    const auto cos = ang.cos().view({1, T, 1, half}), sin = ang.sin().view({1, T, 1, half});
    const auto x1 = x.narrow(3, 0, half), x2 = x.narrow(3, half, half);
    return torch::cat({x1 * cos - x2 * sin, x1 * sin + x2 * cos}, 3);
}

// ---- GGUF key helpers
int64_t key_int(gguf_context * g, const std::string & key, int64_t dflt) {
    const int64_t id = gguf_find_key(g, key.c_str());
    if (id < 0) return dflt;
    switch (gguf_get_kv_type(g, id)) {
        case GGUF_TYPE_UINT32:
            return gguf_get_val_u32(g, id);
        case GGUF_TYPE_INT32:
            return gguf_get_val_i32(g, id);
        case GGUF_TYPE_UINT64:
            return (int64_t)gguf_get_val_u64(g, id);
        default:
            throw Error(fmt::format("GGUF key {} is not an integer", key));
    }
}

float key_f32(gguf_context * g, const std::string & key, float dflt) {
    const int64_t id = gguf_find_key(g, key.c_str());
    return id < 0 ? dflt : gguf_get_val_f32(g, id);
}

}  // namespace

Qwen3Moe Qwen3Moe::init(const MoeModelConfig & c) {
    Qwen3Moe m;
    m.cfg = c;
    const double s = 0.02, s_out = 0.02 / std::sqrt(2.0 * c.n_layer);
    auto normal = [](std::vector<int64_t> shape, double std) { return torch::randn(shape) * std; };
    const int64_t d = c.n_embd, hd = (int64_t)c.n_head * c.head_dim, kvd = (int64_t)c.n_head_kv * c.head_dim;
    m.w["token_embd.weight"] = normal({c.n_vocab, d}, s);
    m.w["output_norm.weight"] = torch::ones({d});
    for (int il = 0; il < c.n_layer; ++il) {
        m.w[blk(il, "attn_norm.weight")] = torch::ones({d});
        m.w[blk(il, "attn_q.weight")] = normal({hd, d}, s);
        m.w[blk(il, "attn_k.weight")] = normal({kvd, d}, s);
        m.w[blk(il, "attn_v.weight")] = normal({kvd, d}, s);
        m.w[blk(il, "attn_output.weight")] = normal({d, hd}, s_out);
        m.w[blk(il, "attn_q_norm.weight")] = torch::ones({c.head_dim});
        m.w[blk(il, "attn_k_norm.weight")] = torch::ones({c.head_dim});
        m.w[blk(il, "ffn_norm.weight")] = torch::ones({d});
        m.w[blk(il, "ffn_gate_inp.weight")] = normal({c.n_expert, d}, s);
        m.w[blk(il, "ffn_gate_exps.weight")] = normal({c.n_expert, c.n_ff_exp, d}, s);
        m.w[blk(il, "ffn_up_exps.weight")] = normal({c.n_expert, c.n_ff_exp, d}, s);
        m.w[blk(il, "ffn_down_exps.weight")] = normal({c.n_expert, d, c.n_ff_exp}, s_out);
    }
    for (auto & [name, t] : m.w) t.set_requires_grad(true);
    return m;
}

std::vector<torch::Tensor> Qwen3Moe::parameters() const {
    std::vector<torch::Tensor> out;
    for (const auto & [name, t] : w) out.push_back(t);
    return out;
}

int64_t Qwen3Moe::n_params() const {
    int64_t n = 0;
    for (const auto & [name, t] : w) n += t.numel();
    return n;
}

Qwen3Moe::Output Qwen3Moe::forward(const torch::Tensor & tokens, bool want_router) const {
    const auto & c = cfg;
    const int64_t B = tokens.size(0), T = tokens.size(1), D = c.head_dim, H = c.n_head, Hkv = c.n_head_kv;
    Output out;
    torch::Tensor x = w.at("token_embd.weight").index_select(0, tokens.reshape({-1})).view({B, T, c.n_embd});
    const auto causal = torch::ones({T, T}, torch::kBool).triu(1);  // true above the diagonal: masked
    const auto fopt = x.options();                                  // the weights' dtype
    torch::Tensor aux = torch::zeros({}, fopt);
    for (int il = 0; il < c.n_layer; ++il) {
        auto W = [&](const char * name) -> const torch::Tensor & { return w.at(blk(il, name)); };
        // ---- attention
        const auto a = rms_norm(x, W("attn_norm.weight"), c.rms_eps);
        auto q = torch::matmul(a, W("attn_q.weight").t()).view({B, T, H, D});
        auto k = torch::matmul(a, W("attn_k.weight").t()).view({B, T, Hkv, D});
        auto v = torch::matmul(a, W("attn_v.weight").t()).view({B, T, Hkv, D});
        q = rope_neox(rms_norm(q, W("attn_q_norm.weight"), c.rms_eps), c.rope_base)
                .transpose(1, 2);  // [B,H,T,D]
        k = rope_neox(rms_norm(k, W("attn_k_norm.weight"), c.rms_eps), c.rope_base).transpose(1, 2);
        v = v.transpose(1, 2);
        if (Hkv != H) {  // grouped-query attention: each kv head serves H/Hkv query heads
            k = k.repeat_interleave(H / Hkv, 1);
            v = v.repeat_interleave(H / Hkv, 1);
        }
        auto att = torch::matmul(q, k.transpose(2, 3)) / std::sqrt((double)D);
        att = torch::softmax(att.masked_fill(causal, -INFINITY), -1);
        const auto o = torch::matmul(att, v).transpose(1, 2).reshape({B, T, H * D});
        x = x + torch::matmul(o, W("attn_output.weight").t());

        // ---- MoE
        const auto m = rms_norm(x, W("ffn_norm.weight"), c.rms_eps).view({B * T, c.n_embd});
        const auto z = torch::matmul(m, W("ffn_gate_inp.weight").t());  // [N, E] router logits
        const auto p = torch::softmax(z, -1);
        const auto [top_v, top_i] = p.topk(c.top_k, -1);                       // [N, k]
        const auto g = top_v / top_v.sum(-1, true).clamp_min(6.103515625e-5);  // weights renormalised
        auto moe = torch::zeros_like(m);
        const auto & Wg = W("ffn_gate_exps.weight");
        const auto & Wu = W("ffn_up_exps.weight");
        const auto & Wd = W("ffn_down_exps.weight");
        for (int e = 0; e < c.n_expert; ++e) {
            const auto sel = (top_i == e).nonzero();  // [n_e, 2]: (token, slot)
            if (sel.size(0) == 0) continue;
            const auto tok = sel.select(1, 0), slot = sel.select(1, 1);
            const auto xe = m.index_select(0, tok);
            const auto ov = expert_override.find({il, e});
            const bool own = ov != expert_override.end();
            const auto & ge = own ? ov->second[0] : Wg[e];
            const auto & ue = own ? ov->second[1] : Wu[e];
            const auto & de = own ? ov->second[2] : Wd[e];
            const auto h = torch::silu(torch::matmul(xe, ge.t())) * torch::matmul(xe, ue.t());
            const auto ye = torch::matmul(h, de.t()) * g.index({tok, slot}).unsqueeze(1);
            moe = moe.index_add(0, tok, ye);
        }
        x = x + moe.view({B, T, c.n_embd});
        // load balancing (Switch Eq. 4): E · Σ_e f_e P_e
        const auto f = torch::zeros({c.n_expert}, fopt)
                           .index_add(0, top_i.reshape({-1}), torch::ones({top_i.numel()}, fopt)) /
                       (double)top_i.numel();
        aux = aux + c.n_expert * (f * p.mean(0)).sum();
        if (want_router) {
            out.router_probs.push_back(p.detach());
            out.topk.push_back(top_i.detach());
        }
    }
    x = rms_norm(x, w.at("output_norm.weight"), c.rms_eps);
    const auto & head = tied_output ? w.at("token_embd.weight") : w.at("output.weight");
    out.logits = torch::matmul(x, head.t());
    out.aux = aux / c.n_layer;
    return out;
}

void Qwen3Moe::write_hparams(gguf_context * meta, const std::string & name) const {
    const auto & c = cfg;
    auto u32 = [&](const char * key, int v) {
        gguf_set_val_u32(meta, fmt::format("qwen3moe.{}", key).c_str(), (uint32_t)v);
    };
    gguf_set_val_str(meta, "general.architecture", "qwen3moe");
    gguf_set_val_str(meta, "general.name", name.c_str());
    u32("context_length", c.n_ctx);
    u32("embedding_length", c.n_embd);
    u32("block_count", c.n_layer);
    u32("feed_forward_length", c.n_ff_exp * c.top_k);
    u32("expert_feed_forward_length", c.n_ff_exp);
    u32("attention.head_count", c.n_head);
    u32("attention.head_count_kv", c.n_head_kv);
    u32("attention.key_length", c.head_dim);
    u32("attention.value_length", c.head_dim);
    u32("rope.dimension_count", c.head_dim);
    u32("expert_count", c.n_expert);
    u32("expert_used_count", c.top_k);
    u32("vocab_size", c.n_vocab);
    gguf_set_val_f32(meta, "qwen3moe.attention.layer_norm_rms_epsilon", c.rms_eps);
    gguf_set_val_f32(meta, "qwen3moe.rope.freq_base", c.rope_base);
}

void Qwen3Moe::save_gguf(const std::string & path, const SpmVocab & vocab, const std::string & dtype,
                         const std::string & name) const {
    if (dtype != "f16" && dtype != "f32")
        throw Error(fmt::format("export type '{}' is not f16 or f32", dtype));
    std::unique_ptr<gguf_context, decltype(&gguf_free)> g(gguf_init_empty(), gguf_free);
    write_hparams(g.get(), name);
    write_spm_vocab(g.get(), vocab);
    size_t bytes = 0;
    for (const auto & [n, t] : w) bytes += (size_t)t.numel() * 4 + 256;
    ggml_init_params ip{bytes + (w.size() + 8) * ggml_tensor_overhead(), nullptr, false};
    std::unique_ptr<ggml_context, decltype(&ggml_free)> ctx(ggml_init(ip), ggml_free);
    for (const auto & [n, t] : w) {
        if (tied_output && n == "output.weight") continue;
        const auto data = t.detach().to(torch::kFloat32).contiguous();
        // norms (1-D) and the router stay f32: the router logits are what routescope records
        const bool keep_f32 = dtype == "f32" || data.dim() == 1 || n.ends_with("ffn_gate_inp.weight");
        int64_t ne[4] = {1, 1, 1, 1};
        for (int64_t i = 0; i < data.dim(); ++i) ne[i] = data.size(data.dim() - 1 - i);  // ggml order
        ggml_tensor * gt =
            ggml_new_tensor(ctx.get(), keep_f32 ? GGML_TYPE_F32 : GGML_TYPE_F16, (int)data.dim(), ne);
        ggml_set_name(gt, n.c_str());
        if (keep_f32)
            std::memcpy(gt->data, data.data_ptr<float>(), (size_t)data.numel() * 4);
        else
            ggml_fp32_to_fp16_row(data.data_ptr<float>(), (ggml_fp16_t *)gt->data, data.numel());
        gguf_add_tensor(g.get(), gt);
    }
    const std::string tmp = path + ".tmp";
    if (!gguf_write_to_file(g.get(), tmp.c_str(), false))
        throw Error(fmt::format("could not write {} (does the directory exist?)", tmp));
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) throw Error(fmt::format("could not rename {} to {}: {}", tmp, path, ec.message()));
}

Qwen3Moe Qwen3Moe::load_gguf(const std::string & path) {
    ggml_context * raw = nullptr;
    gguf_init_params ip{false, &raw};
    std::unique_ptr<gguf_context, decltype(&gguf_free)> g(gguf_init_from_file(path.c_str(), ip), gguf_free);
    if (!g) throw Error(fmt::format("{} is not a readable GGUF file", path));
    std::unique_ptr<ggml_context, decltype(&ggml_free)> ctx(raw, ggml_free);
    const int64_t arch_id = gguf_find_key(g.get(), "general.architecture");
    const std::string arch = arch_id < 0 ? "" : gguf_get_val_str(g.get(), arch_id);
    if (arch != "qwen3moe")
        throw Error(
            fmt::format("{} is a '{}' model; the reference forward implements qwen3moe only", path, arch));
    const std::string a = "qwen3moe.";
    Qwen3Moe m;
    auto & c = m.cfg;
    c.n_layer = (int)key_int(g.get(), a + "block_count", 0);
    c.n_embd = (int)key_int(g.get(), a + "embedding_length", 0);
    c.n_head = (int)key_int(g.get(), a + "attention.head_count", 0);
    c.n_head_kv = (int)key_int(g.get(), a + "attention.head_count_kv", c.n_head);
    c.head_dim = (int)key_int(g.get(), a + "attention.key_length", c.n_head ? c.n_embd / c.n_head : 0);
    c.n_expert = (int)key_int(g.get(), a + "expert_count", 0);
    c.top_k = (int)key_int(g.get(), a + "expert_used_count", 0);
    c.n_ctx = (int)key_int(g.get(), a + "context_length", 0);
    c.rope_base = key_f32(g.get(), a + "rope.freq_base", 10000.0f);
    c.rms_eps = key_f32(g.get(), a + "attention.layer_norm_rms_epsilon", 1e-6f);
    if (key_f32(g.get(), a + "expert_weights_scale", 0.0f) != 0.0f &&
        key_f32(g.get(), a + "expert_weights_scale", 0.0f) != 1.0f)
        throw Error(
            fmt::format("{}: expert_weights_scale is not implemented by the reference forward", path));
    for (int64_t i = 0; i < gguf_get_n_tensors(g.get()); ++i) {
        const std::string name = gguf_get_tensor_name(g.get(), i);
        ggml_tensor * t = ggml_get_tensor(ctx.get(), name.c_str());
        if (name.ends_with(".scale"))
            throw Error(fmt::format("{}: per-expert scales ({}) are not implemented", path, name));
        std::vector<int64_t> shape;
        for (int d = ggml_n_dims(t) - 1; d >= 0; --d) shape.push_back(t->ne[d]);
        auto out = torch::empty(shape, torch::kFloat32);
        if (t->type == GGML_TYPE_F32)
            std::memcpy(out.data_ptr<float>(), t->data, ggml_nbytes(t));
        else if (const auto * tr = ggml_get_type_traits(t->type); tr->to_float)
            tr->to_float(t->data, out.data_ptr<float>(), ggml_nelements(t));
        else
            throw Error(fmt::format("{}: tensor {} has type {} that ggml cannot convert", path, name,
                                    ggml_type_name(t->type)));
        m.w[name] = out;
    }
    if (!m.w.contains("token_embd.weight")) throw Error(fmt::format("{} has no token_embd.weight", path));
    c.n_vocab = (int)m.w["token_embd.weight"].size(0);
    c.n_ff_exp =
        m.w.contains("blk.0.ffn_gate_exps.weight") ? (int)m.w["blk.0.ffn_gate_exps.weight"].size(1) : 0;
    m.tied_output = !m.w.contains("output.weight");
    return m;
}

ReferenceForward reference_forward(const std::string & gguf_path, std::span<const int32_t> tokens) {
    const Qwen3Moe m = Qwen3Moe::load_gguf(gguf_path);
    torch::NoGradGuard no_grad;
    const auto tok =
        torch::tensor(std::vector<int64_t>(tokens.begin(), tokens.end()), torch::kInt64).view({1, -1});
    const auto o = m.forward(tok, true);
    ReferenceForward r;
    r.n_vocab = m.cfg.n_vocab, r.n_moe = m.cfg.n_layer, r.n_expert = m.cfg.n_expert, r.top_k = m.cfg.top_k;
    const int64_t T = (int64_t)tokens.size();
    const auto logits = o.logits.view({T, -1}).contiguous();
    r.logits.assign(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
    const auto probs = torch::stack(o.router_probs, 1).contiguous();           // [T, L, E]
    const auto topk = torch::stack(o.topk, 1).to(torch::kInt32).contiguous();  // [T, L, k]
    r.router_probs.assign(probs.data_ptr<float>(), probs.data_ptr<float>() + probs.numel());
    r.topk.assign(topk.data_ptr<int32_t>(), topk.data_ptr<int32_t>() + topk.numel());
    return r;
}

}  // namespace rs
