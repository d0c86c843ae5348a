// `routescope train`: a small Qwen3-MoE language model trained from scratch on a multilingual corpus with
// libtorch (CPU; CUDA when the user's libtorch has it), exported as a GGUF file that llama.cpp loads
// unchanged (docs/papers.md, RISE; issue #5). Also the independent forward pass that checks
// llama.cpp's routing: the same model family evaluated in libtorch from a GGUF file's weights.
//
// Model (Qwen3-MoE block, llama.cpp src/models/qwen3moe.cpp): token embedding; per block RMSNorm →
// attention (q/k/v projections, per-head RMSNorm of q and k, NeoX RoPE, causal softmax, output projection)
// → residual → RMSNorm → MoE (router logits z = W_r x, p = softmax(z), top-k of p, weights p_topk / Σ p_topk,
// SwiGLU experts down(silu(gate x) · up x)) → residual; final RMSNorm; output = token embedding (tied).
// Loss: next-token cross-entropy + aux_coef · load-balancing loss per block averaged over blocks,
// E · Σ_e f_e · P_e (Fedus et al. 2022, Switch Transformer Eq. 4): f_e the share of the N·k selections that
// went to e, P_e the mean router probability of e.
//
// Data: a FLoRes-style corpus (corpus.h). The last val_lines lines of every language are held out for
// validation; the rest is the training set, of which a language mix (TSV: lang, lines, weight) may keep the
// first `lines` lines and weight the language when sampling (default: every line, weight 1). A training
// sequence is BOS + consecutive lines of one language (sampled ∝ lines × weight, from a random line) cut
// at seq_len + 1 tokens. The tokenizer is a BPE SPM vocabulary trained on the same weighted lines
// (spm_vocab.h), and the corpus is tokenized by llama.cpp itself, so training and inference see the same ids.
//
// Reproducibility: all randomness (initialisation, sampling) comes from the seed; with the same thread
// count the exported file is bit-identical (checked with 1 thread in the tests).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace rs {

struct MoeModelConfig {
    int n_vocab = 4096;  // size of the trained vocabulary
    int n_layer = 8;
    int n_embd = 128;
    int n_head = 4;
    int n_head_kv = 0;  // 0: n_head (no grouped-query attention)
    int head_dim = 32;
    int n_expert = 16;
    int top_k = 2;
    int n_ff_exp = 128;
    int n_ctx = 512;  // context length written to the GGUF
    float rope_base = 10000.0f;
    float rms_eps = 1e-6f;
};

struct TrainJob {
    std::string corpus;              // corpus spec (corpus.h), e.g. flores:data/flores200/dev
    std::vector<std::string> langs;  // empty: all
    std::string mix;                 // optional TSV: lang TAB lines TAB weight (header line)
    std::string out;                 // model.gguf
    std::string checkpoint_dir;      // default: <out>.ckpt
    bool resume = false;             // continue from the checkpoint
    std::string arch = "qwen3moe";   // export architecture
    std::string dtype = "f16";       // export type of the matrices (f16 | f32); norms and router stay f32
    std::string name = "routescope-qwen3moe";  // general.name of the export
    MoeModelConfig model;
    int seq_len = 128;
    int batch = 32;
    int64_t steps = 1000;
    double lr = 3e-3;
    double min_lr = 3e-4;  // cosine decay floor
    int64_t warmup = 100;
    double weight_decay = 0.1;
    double aux_coef = 0.01;
    double grad_clip = 1.0;
    double char_coverage = 0.9995;
    int val_lines = 50;
    int64_t eval_every = 100;
    bool export_best = true;  // export the weights of the lowest validation loss (else the last step's)
    int64_t checkpoint_every = 100;
    uint64_t seed = 0;
    int n_threads = 0;  // 0: all cores
    bool progress = true;
    int64_t stop_after = -1;  // testing aid: stop (as if killed) after this step, without exporting
};

struct LangLoss {
    std::string lang;
    double loss = 0;  // mean next-token cross-entropy (nats), BOS not predicted
    int64_t n_tokens = 0;
};

struct TrainReport {
    int64_t steps = 0;
    int64_t n_params = 0;
    int64_t tokens_seen = 0;
    int64_t train_tokens = 0;  // size of the training set (tokens)
    double final_train_loss = 0;
    int64_t exported_step = 0;        // the step whose weights were exported
    double val_loss = 0;              // of the exported weights, over all validation tokens
    std::vector<LangLoss> val_langs;  // per language
    double seconds = 0;
    std::string log_csv;   // the loss curve: step,lr,loss,aux,val_loss,tokens,seconds
    bool stopped = false;  // stop_after was reached: nothing exported
};

// Trains (or resumes) and exports; rs::Error on bad input (corpus too small for one batch, unknown export
// architecture, a configuration too large for this machine's memory, bad sizes).
TrainReport run_train(const TrainJob & job);

// The reference forward pass: a qwen3moe GGUF (routescope's export or make-model's) evaluated in libtorch,
// one sequence. router_probs = softmax over all E router logits (the trace's p), topk = the selected ids.
struct ReferenceForward {
    int n_vocab = 0, n_moe = 0, n_expert = 0, top_k = 0;
    std::vector<float> logits;        // [T, n_vocab]
    std::vector<float> router_probs;  // [T, n_moe, n_expert]
    std::vector<int32_t> topk;        // [T, n_moe, top_k], in descending probability
};
ReferenceForward reference_forward(const std::string & gguf_path, std::span<const int32_t> tokens);

}  // namespace rs
