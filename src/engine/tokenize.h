// llama_tokenize into a vector, growing it when the first guess is too small (private to src/engine).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

struct llama_vocab;

namespace rs {

// parse_special: text such as "<|im_start|>" becomes its special token (template text only, never data).
std::vector<int32_t> tokenize_text(const llama_vocab * vocab, std::string_view text, bool add_special,
                                   bool parse_special = false);

}  // namespace rs
