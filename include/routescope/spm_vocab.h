// SentencePiece-style vocabularies for llama.cpp's "llama" (SPM) tokenizer, and BPE training of one.
//
// llama.cpp's SPM tokenizer (llm_tokenizer_spm) prefixes a space, writes spaces as "▁" (U+2581), splits the
// text into UTF-8 characters and repeatedly merges the adjacent pair whose concatenation is a vocabulary
// piece with the highest score; a final symbol that is no piece becomes its bytes (<0xXX> tokens). So a
// vocabulary of BPE merges with score = −(merge rank) tokenizes exactly as BPE does, and every character
// left out of the vocabulary still tokenizes, as bytes.
//
// train_spm_bpe learns such a vocabulary from weighted texts (Sennrich et al. 2016 BPE): words are the
// "▁"-started runs between spaces (pieces never span words, as SentencePiece's split_by_whitespace), the base
// symbols are the most frequent characters up to char_coverage of all character occurrences (the rest fall
// back to bytes, as SentencePiece's character_coverage), then the most frequent adjacent pair is merged
// until vocab_size pieces exist or no pair occurs min_pair_count times. Ties go to the pair of lower
// symbol ids, so training is deterministic. Implemented in src/engine/spm_vocab.cpp.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

struct gguf_context;

namespace rs {

struct SpmVocab {
    enum Type : int32_t { normal = 1, unknown = 2, control = 3, byte = 6 };  // llama_token_type
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<int32_t> types;
    void add(std::string text, float score, int32_t type);
    int size() const { return (int)tokens.size(); }
};

// <unk> (0), <s> (1, BOS), </s> (2, EOS) and the 256 byte tokens <0x00>..<0xFF> (3..258).
SpmVocab spm_base_vocab();

struct WeightedText {
    std::string text;
    double weight = 1.0;  // how many times the text counts
};

struct BpeTrainOptions {
    int vocab_size = 4096;  // total, the 259 base tokens included
    double char_coverage = 0.9995;
    double min_pair_count = 2.0;  // weighted occurrences a pair needs to be merged
};

// rs::Error when vocab_size leaves no room beyond the base tokens or the texts are empty.
SpmVocab train_spm_bpe(std::span<const WeightedText> texts, const BpeTrainOptions & opt);

// Writes the tokenizer.ggml.* keys of an SPM vocabulary (BOS added, EOS not, a space prefix).
void write_spm_vocab(gguf_context * ctx, const SpmVocab & v);

}  // namespace rs
