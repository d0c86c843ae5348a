// Vocab-only tokenizer (routescope/tokenizer.h) and the shared llama_tokenize wrapper (tokenize.h).
#include "routescope/tokenizer.h"

#include <filesystem>

#include <fmt/format.h>

#include "llama.h"
#include "routescope/common.h"
#include "routescope/engine.h"
#include "tokenize.h"

namespace rs {

std::vector<int32_t> tokenize_text(const llama_vocab * vocab, std::string_view text, bool add_special,
                                   bool parse_special) {
    std::vector<llama_token> out(text.size() + 8);
    int n = llama_tokenize(vocab, text.data(), (int32_t)text.size(), out.data(), (int32_t)out.size(),
                           add_special, parse_special);
    if (n < 0) {
        out.resize((size_t)-n);
        n = llama_tokenize(vocab, text.data(), (int32_t)text.size(), out.data(), (int32_t)out.size(),
                           add_special, parse_special);
    }
    RS_ASSERT(n >= 0);
    out.resize((size_t)n);
    return out;
}

Tokenizer::Tokenizer(const std::string & gguf_path) {
    engine_backend_init();
    if (!std::filesystem::is_regular_file(gguf_path)) throw Error(fmt::format("{} not found", gguf_path));
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    model_ = llama_model_load_from_file(gguf_path.c_str(), mp);
    if (!model_)
        throw Error(
            fmt::format("llama.cpp could not read the vocabulary of {} (RS_VERBOSE=1 shows why)", gguf_path));
}

Tokenizer::~Tokenizer() {
    if (model_) llama_model_free(model_);
}

std::vector<int32_t> Tokenizer::tokenize(const std::string & text, bool add_special) const {
    return tokenize_text(llama_model_get_vocab(model_), text, add_special);
}

int Tokenizer::n_vocab() const {
    return llama_vocab_n_tokens(llama_model_get_vocab(model_));
}

}  // namespace rs
