// The Qwen3-MoE block family in libtorch (private to src/train): parameters under their GGUF names, the
// forward pass of llama.cpp's src/models/qwen3moe.cpp, and GGUF import/export. Shapes are torch (row-major)
// order, the reverse of ggml's ne: a ggml [n_embd, n_vocab] tensor is a torch [n_vocab, n_embd] one.
#pragma once

#include <array>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "routescope/spm_vocab.h"
#include "routescope/train.h"

namespace rs {

struct Qwen3Moe {
    MoeModelConfig cfg;
    bool tied_output = true;                 // output = token_embd (no output.weight)
    std::map<std::string, torch::Tensor> w;  // GGUF name -> parameter
    // Expert slices used in place of w's: (block, expert) -> {gate [F, D], up [F, D], down [D, F]}. The
    // finetuner (finetune.cpp) trains these leaves while every tensor of w stays frozen.
    std::map<std::pair<int, int>, std::array<torch::Tensor, 3>> expert_override;

    // Random initialisation (GPT-2 style: N(0, 0.02), output projections / sqrt(2·n_layer), norms 1),
    // from torch's generator (seed it first).
    static Qwen3Moe init(const MoeModelConfig & cfg);

    // Loads the weights and hyper-parameters of a qwen3moe GGUF (any ggml type, converted to f32).
    static Qwen3Moe load_gguf(const std::string & path);

    // Writes a GGUF llama.cpp loads as qwen3moe: matrices as f16 or f32, norms and router f32.
    void save_gguf(const std::string & path, const SpmVocab & vocab, const std::string & dtype,
                   const std::string & name) const;

    std::vector<torch::Tensor> parameters() const;
    int64_t n_params() const;

    struct Output {
        torch::Tensor logits;                     // [B, T, V]
        torch::Tensor aux;                        // load-balancing loss, mean over blocks
        std::vector<torch::Tensor> router_probs;  // per block [B·T, E] (with want_router)
        std::vector<torch::Tensor> topk;          // per block [B·T, k]
    };
    // tokens: [B, T] int64; positions 0..T−1 in every row. Computes in the dtype of the weights (f32; the
    // gradient check runs it in f64).
    Output forward(const torch::Tensor & tokens, bool want_router = false) const;

    // Writes every parameter of the model to the GGUF KV set `meta` (qwen3moe.* keys).
    void write_hparams(struct gguf_context * meta, const std::string & name) const;
};

}  // namespace rs
