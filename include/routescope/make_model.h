// Tiny random-weight MoE models as GGUF files, for tests and benchmarks (no downloads).
//
// Written through llama.cpp's public API (gguf.h + llama_model_init_from_user, which creates the
// tensors for the architecture), all F32, about 2 MB at the default sizes. Seeded and
// deterministic: the same params give a byte-identical file. Norm weights are 1, biases 0 (except
// gpt-oss's router bias, which is random), deepseek2's exp_probs_b 0, so expert selection is the
// plain top-k of the router scores. The tokenizer is a SentencePiece-style ("llama") vocabulary
// of ~620 tokens with byte fallback, so any UTF-8 text tokenizes (BOS is added).
//
// Per arch: olmoe, qwen3moe, phimoe, llama (Mixtral) and gpt-oss route every layer; qwen2moe adds
// a sigmoid-gated shared expert; deepseek2 (MLA attention) has a dense layer 0, then MoE layers
// with sigmoid gating, exp_probs_b, normalised and scaled (2.5) weights and one shared expert,
// its gate/up expert weights fused into one ffn_gate_up_exps tensor. Attention is MHA (no GQA),
// except deepseek2's MLA.
//
// Every other llama.cpp v0.5.0 architecture with MoE layers (make_model_all_archs(): llama4,
// glm4moe, qwen3next, jamba, deepseek4, grovemoe, ...) is written by a generic writer
// (make_model_archs.cpp, a public-API port of llama.cpp's tests/test-llama-archs.cpp): one
// superset of hyperparameters, 1 leading dense layer, 1 shared expert, sigmoid gating (sqrt-softplus
// for deepseek4), hybrid archs with recurrent odd layers; the variant fields below change that.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rs {

struct MakeModelParams {
    // olmoe, qwen3moe, phimoe, gpt-oss, llama (Mixtral-style), qwen2moe, deepseek2
    std::string arch = "olmoe";
    int n_layer = 4;
    int n_expert = 8;
    int top_k = 2;
    int n_embd = 64;
    int n_ff = 64;  // expert FFN width (also the shared-expert and dense-FFN width)
    int n_head = 4;
    int n_ctx = 2048;  // context_length written to the file
    uint64_t seed = 42;
    float stdev = 0.2f;  // weights ~ N(0, stdev); norms are 1, biases and scales as the arch needs
    // Write a dense (non-MoE) model instead, for "not a MoE model" error paths: qwen3 for
    // qwen3moe, qwen2 for qwen2moe, plain llama for the others. n_expert/top_k are still checked.
    bool dense = false;

    // Variants, for the generic architectures only (ignored by the seven hand-written ones):
    int dense_lead = -1;          // leading dense blocks (leading_dense_block_count); -1: 1
    int moe_step = 0;             // MoE every N layers (interleave_moe_layer_step, moe_every_n_layers); 0: 2
    int n_shared = -1;            // shared experts (expert_shared_count); -1: 1
    int nextn = 0;                // MTP / nextn blocks, counted in n_layer (nextn_predict_layers)
    int n_group = 0;              // expert groups (DeepSeek-V3 group-limited routing); 0: none
    int n_group_used = 0;         // groups selected per token
    bool selection_bias = false;  // random exp_probs_b (selection-only bias) instead of zeros
    int hash_layers = 0;          // deepseek4: leading hash-routed layers (hash_layer_count)
    int gating = 0;               // expert_gating_func: 0 arch default, 1 softmax, 2 sigmoid, 3, 4

    // Storage type of the router weights (blk.N.ffn_gate_inp.weight): "" or "f32" (default), "f16",
    // "bf16" (as real checkpoints ship them). All architectures.
    std::string router_type;
};

// The seven hand-written architectures (olmoe ... deepseek2), whose files are tuned and stable.
std::vector<std::string> make_model_archs();

// Every architecture make_model can write: the seven, then every other llama.cpp v0.5.0
// architecture with MoE layers (generic writer).
std::vector<std::string> make_model_all_archs();

// Writes the model to `path` (overwriting it); throws rs::Error for an unknown arch, invalid sizes
// (n_layer < 1, or < 2 for MoE deepseek2; n_expert < 2; top_k not in [1, n_expert]; n_embd not a
// multiple of n_head; odd head size; ...) or a failed write. Silences llama.cpp's log while it
// runs unless the environment variable RS_VERBOSE is set.
void make_model(const MakeModelParams & p, const std::string & path);

// Quantises the model `in` to `out` with llama_model_quantize: type "Q8_0" or "Q4_K_M", one
// thread. llama.cpp never quantises router weights (ffn_gate_inp.weight keeps the type it has in
// `in`, llama-quant.cpp), so a router in f16/bf16 is chosen when the model is written
// (MakeModelParams::router_type). Throws rs::Error on a bad type or a failed quantisation.
void quantize_model(const std::string & in, const std::string & out, const std::string & type);

// The `type` values quantize_model accepts.
std::vector<std::string> quantize_types();

}  // namespace rs
