// Text → token ids with a GGUF model's own vocabulary: llama.cpp's tokenizer on a vocab-only load (no
// weights), for tools that need tokens without a context (the trainer tokenizes its corpus this way, so
// training and inference see the same ids).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

struct llama_model;

namespace rs {

class Tokenizer {
  public:
    // Loads only the vocabulary of `gguf_path`; rs::Error when the file is missing or has none.
    explicit Tokenizer(const std::string & gguf_path);
    ~Tokenizer();
    Tokenizer(const Tokenizer &) = delete;
    Tokenizer & operator=(const Tokenizer &) = delete;

    // add_special: BOS (and EOS) as the vocabulary asks for.
    std::vector<int32_t> tokenize(const std::string & text, bool add_special) const;
    int n_vocab() const;

  private:
    llama_model * model_ = nullptr;
};

}  // namespace rs
