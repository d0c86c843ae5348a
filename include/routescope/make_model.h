// Tiny random-weight MoE models as GGUF files, for tests and benchmarks (no downloads).
//
// Written through llama.cpp's public API (gguf.h + llama_model_init_from_user +
// llama_model_save_to_file), seeded and deterministic. The tokenizer is a SentencePiece-style
// ("llama") vocabulary with byte fallback, so any UTF-8 text tokenizes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rs {

struct MakeModelParams {
    std::string arch = "olmoe";  // olmoe, qwen3moe, phimoe, gpt-oss, llama (Mixtral-style), qwen2moe, deepseek2
    int n_layer = 4;
    int n_expert = 8;
    int top_k = 2;
    int n_embd = 64;
    int n_ff = 64;     // expert FFN width
    int n_head = 4;
    int n_ctx = 2048;  // context_length written to the file
    uint64_t seed = 42;
    float stdev = 0.2f;  // weights ~ N(0, stdev); norms are 1, biases and scales as the arch needs
    bool dense = false;  // write a dense (non-MoE) model of the same family, for error-path tests
};

// Architectures make_model can write.
std::vector<std::string> make_model_archs();

// Writes the model to `path`; throws rs::Error for an unknown arch or invalid sizes.
void make_model(const MakeModelParams & p, const std::string & path);

}  // namespace rs
