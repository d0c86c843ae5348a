// SPM vocabularies and their BPE training (routescope/spm_vocab.h).
//
// Training keeps, per distinct word, its symbol sequence and (integer) count, the weighted count of every
// adjacent symbol pair, and for each pair the words it occurs in. A merge rewrites only those words: their
// pairs are subtracted, the word is re-segmented, its pairs are added back. The next pair to merge comes
// from a max-heap with lazy deletion (an entry whose count is stale is skipped). Counts are integers
// (weights in thousandths), so sums are exact and training is deterministic.
#include "routescope/spm_vocab.h"

#include <algorithm>
#include <map>
#include <queue>
#include <unordered_map>

#include <fmt/format.h>
#include <gguf.h>

#include "routescope/common.h"

namespace rs {
namespace {

const std::string kSpace = "\xE2\x96\x81";  // "▁", SentencePiece's space

size_t utf8_len(unsigned char c) {
    return c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
}

// The text as llama.cpp's SPM tokenizer sees it: a leading space, every space as "▁".
std::string escape_spaces(const std::string & text) {
    std::string out = kSpace;
    for (const char ch : text) {
        if (ch == ' ')
            out += kSpace;
        else
            out += ch;
    }
    return out;
}

// Words: "▁"-started runs, as UTF-8 character lists.
std::vector<std::vector<std::string>> split_words(const std::string & escaped) {
    std::vector<std::vector<std::string>> words;
    for (size_t i = 0; i < escaped.size();) {
        const size_t n = std::min(utf8_len((unsigned char)escaped[i]), escaped.size() - i);
        std::string ch = escaped.substr(i, n);
        if (ch == kSpace || words.empty()) words.emplace_back();
        words.back().push_back(std::move(ch));
        i += n;
    }
    return words;
}

uint64_t pair_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

struct HeapEntry {
    int64_t count;
    int32_t a, b;
    bool operator<(const HeapEntry & o) const {  // max-heap on count; ties: the lower ids first
        if (count != o.count) return count < o.count;
        if (a != o.a) return a > o.a;
        return b > o.b;
    }
};

}  // namespace

void SpmVocab::add(std::string text, float score, int32_t type) {
    tokens.push_back(std::move(text));
    scores.push_back(score);
    types.push_back(type);
}

SpmVocab spm_base_vocab() {
    SpmVocab v;
    v.add("<unk>", 0.0f, SpmVocab::unknown);
    v.add("<s>", 0.0f, SpmVocab::control);
    v.add("</s>", 0.0f, SpmVocab::control);
    for (int b = 0; b < 256; ++b) v.add(fmt::format("<0x{:02X}>", b), 0.0f, SpmVocab::byte);
    return v;
}

SpmVocab train_spm_bpe(std::span<const WeightedText> texts, const BpeTrainOptions & opt) {
    SpmVocab v = spm_base_vocab();
    const int budget = opt.vocab_size - v.size();
    if (budget < 2)
        throw Error(fmt::format("vocabulary size {} leaves no room for pieces (min {})", opt.vocab_size,
                                v.size() + 2));

    // ---- distinct words with integer counts, and character counts
    std::map<std::vector<std::string>, int64_t> word_count;
    std::map<std::string, int64_t> char_count;
    for (const auto & t : texts) {
        const auto w = (int64_t)std::llround(t.weight * 1000.0);
        if (w <= 0 || t.text.empty()) continue;
        for (auto & word : split_words(escape_spaces(t.text))) {
            for (const auto & ch : word) char_count[ch] += w;
            word_count[std::move(word)] += w;
        }
    }
    if (word_count.empty()) throw Error("no text to train a vocabulary on");

    // ---- base symbols: the most frequent characters up to char_coverage (at most 3/4 of the budget)
    std::vector<std::pair<int64_t, std::string>> chars;
    int64_t total = 0;
    for (const auto & [ch, n] : char_count) {
        chars.push_back({n, ch});
        total += n;
    }
    std::sort(chars.begin(), chars.end(), [](const auto & x, const auto & y) {
        return x.first != y.first ? x.first > y.first : x.second < y.second;
    });
    std::vector<std::string> sym;  // symbol id -> text
    std::unordered_map<std::string, int32_t> char_id;
    int64_t covered = 0;
    for (const auto & [n, ch] : chars) {
        if ((double)covered >= opt.char_coverage * (double)total || (int)sym.size() >= budget * 3 / 4) break;
        char_id[ch] = (int32_t)sym.size();
        sym.push_back(ch);
        covered += n;
    }
    for (const auto & s : sym) v.add(s, 0.0f, SpmVocab::normal);

    // ---- words as symbol ids (−1: a character left to byte fallback, never merged)
    struct Word {
        std::vector<int32_t> s;
        int64_t count;
        int64_t stamp = -1;  // last merge that rewrote it
    };
    std::vector<Word> words;
    for (const auto & [chs, n] : word_count) {
        Word w{{}, n};
        for (const auto & ch : chs) {
            const auto it = char_id.find(ch);
            w.s.push_back(it == char_id.end() ? -1 : it->second);
        }
        words.push_back(std::move(w));
    }
    std::unordered_map<uint64_t, int64_t> pair_count;
    std::unordered_map<uint64_t, std::vector<int32_t>> pair_words;
    auto add_pairs = [&](int32_t wi, int64_t sign, std::vector<uint64_t> * changed) {
        const Word & w = words[(size_t)wi];
        for (size_t i = 0; i + 1 < w.s.size(); ++i) {
            if (w.s[i] < 0 || w.s[i + 1] < 0) continue;
            const uint64_t k = pair_key(w.s[i], w.s[i + 1]);
            pair_count[k] += sign * w.count;
            if (sign > 0) pair_words[k].push_back(wi);
            if (changed) changed->push_back(k);
        }
    };
    for (int32_t wi = 0; wi < (int32_t)words.size(); ++wi) add_pairs(wi, +1, nullptr);
    std::priority_queue<HeapEntry> heap;
    for (const auto & [k, n] : pair_count) heap.push({n, (int32_t)(k >> 32), (int32_t)(k & 0xffffffffu)});

    // ---- merges
    const auto min_count = (int64_t)std::llround(opt.min_pair_count * 1000.0);
    int64_t rank = 0;
    while (v.size() < opt.vocab_size && !heap.empty()) {
        const HeapEntry top = heap.top();
        heap.pop();
        const uint64_t k = pair_key(top.a, top.b);
        const auto it = pair_count.find(k);
        if (it == pair_count.end() || it->second != top.count) continue;  // stale entry
        if (top.count < min_count) break;
        const int32_t merged = (int32_t)sym.size();
        sym.push_back(sym[(size_t)top.a] + sym[(size_t)top.b]);
        v.add(sym.back(), -(float)(++rank), SpmVocab::normal);  // earlier merges win (higher score)
        std::vector<uint64_t> changed;
        const auto occurrences = std::move(pair_words[k]);
        pair_words.erase(k);
        for (const int32_t wi : occurrences) {
            Word & w = words[(size_t)wi];
            if (w.stamp == rank) continue;  // listed twice
            w.stamp = rank;
            add_pairs(wi, -1, &changed);
            std::vector<int32_t> out;
            for (size_t i = 0; i < w.s.size(); ++i) {
                if (i + 1 < w.s.size() && w.s[i] == top.a && w.s[i + 1] == top.b) {
                    out.push_back(merged);
                    ++i;
                } else {
                    out.push_back(w.s[i]);
                }
            }
            w.s = std::move(out);
            add_pairs(wi, +1, &changed);
        }
        pair_count.erase(k);
        std::sort(changed.begin(), changed.end());
        changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
        for (const uint64_t c : changed) {
            const auto pc = pair_count.find(c);
            if (pc == pair_count.end()) continue;
            if (pc->second <= 0) {
                pair_count.erase(pc);
                continue;
            }
            heap.push({pc->second, (int32_t)(c >> 32), (int32_t)(c & 0xffffffffu)});
        }
    }
    return v;
}

void write_spm_vocab(gguf_context * ctx, const SpmVocab & v) {
    std::vector<const char *> ptrs;
    ptrs.reserve(v.tokens.size());
    for (const auto & s : v.tokens) ptrs.push_back(s.c_str());
    gguf_set_val_str(ctx, "tokenizer.ggml.model", "llama");
    gguf_set_arr_str(ctx, "tokenizer.ggml.tokens", ptrs.data(), ptrs.size());
    gguf_set_arr_data(ctx, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, v.scores.data(), v.scores.size());
    gguf_set_arr_data(ctx, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, v.types.data(), v.types.size());
    gguf_set_val_u32(ctx, "tokenizer.ggml.unknown_token_id", 0);
    gguf_set_val_u32(ctx, "tokenizer.ggml.bos_token_id", 1);
    gguf_set_val_u32(ctx, "tokenizer.ggml.eos_token_id", 2);
    gguf_set_val_bool(ctx, "tokenizer.ggml.add_bos_token", true);
    gguf_set_val_bool(ctx, "tokenizer.ggml.add_eos_token", false);
}

}  // namespace rs
