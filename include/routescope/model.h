// What routescope needs to know about a GGUF MoE model, read from its metadata and tensor list
// (gguf.h, no weights loaded): architecture, layers, which layers have a router, experts, top-k,
// how the model selects experts. Dense models and unreadable files are rejected with rs::Error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rs {

struct ModelInfo {
    std::string path;
    std::string arch;  // general.architecture
    std::string name;  // general.name, may be empty
    int n_layer = 0;
    std::vector<int> moe_layers;       // blocks with blk.<il>.ffn_gate_inp.weight, ascending (MTP excluded)
    std::vector<bool> router_bias;     // [n_layer]: blk.<il>.ffn_gate_inp.bias exists (gpt-oss)
    std::vector<bool> selection_bias;  // [n_layer]: blk.<il>.exp_probs_b.bias exists (DeepSeek-V3)
    int n_expert = 0;
    int top_k = 0;
    int n_expert_shared = 0;
    int n_group = 0, n_group_used = 0;  // expert groups (DeepSeek-V3); 0 = none
    int n_nextn = 0;  // trailing MTP/NextN blocks (never run by llama.cpp; not in moe_layers)
    // e.g. "softmax", "softmax+renorm", "softmax_topk", "sigmoid+renorm+bias+groups". inspect_model
    // derives it from the GGUF keys; the Engine replaces it with what the loaded graph does
    // ("a|b" where layers differ).
    std::string gating;
    std::vector<int> hash_layers;  // blocks selecting experts by a token table (deepseek4); by the Engine
    int64_t file_size = 0;
};

// Reads metadata and tensor names. Throws rs::Error: missing file, not a GGUF, not a MoE model.
ModelInfo inspect_model(const std::string & path);

// Throws rs::Error unless tests/arch_conformance_test.cpp covers the model's architecture (every one
// make_model_all_archs() writes): routing of other architectures cannot be vouched for.
void check_verified_arch(const ModelInfo & mi);

// What the stored routing distribution p (softmax over all E router logits, Bandarkar et al.'s
// definition) means for a model with this gating label: its own gate, or only a proxy of it.
std::string routing_p_meaning(const std::string & gating, bool hash_layers);

// SHA-256 of the file as lowercase hex; cached under ~/.cache/routescope/sha256 keyed by path, size
// and modification time, because hashing a 17 GB model takes most of a minute.
std::string model_sha256(const std::string & path);

}  // namespace rs
