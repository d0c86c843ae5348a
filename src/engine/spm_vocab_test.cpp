// BPE training of SPM vocabularies against merges worked out by hand.
#include <gtest/gtest.h>

#include "routescope/common.h"
#include "routescope/spm_vocab.h"

namespace {

const std::string S = "\xE2\x96\x81";  // "▁"

std::vector<std::string> learned(const rs::SpmVocab & v) {
    return std::vector<std::string>(v.tokens.begin() + 259, v.tokens.end());
}

TEST(SpmBase, SpecialAndByteTokens) {
    const auto v = rs::spm_base_vocab();
    ASSERT_EQ(v.size(), 259);
    EXPECT_EQ(v.tokens[0], "<unk>");
    EXPECT_EQ(v.tokens[1], "<s>");
    EXPECT_EQ(v.tokens[2], "</s>");
    EXPECT_EQ(v.tokens[3], "<0x00>");
    EXPECT_EQ(v.tokens[258], "<0xFF>");
    EXPECT_EQ(v.types[258], rs::SpmVocab::byte);
}

// "ab ab ab ac" → words ▁ab ×3, ▁ac ×1. Characters by count (ties by text): a 4, ▁ 4, b 3, c 1.
// Pairs: (▁,a) 4, (a,b) 3, (a,c) 1 → merge ▁a; then (▁a,b) 3, (▁a,c) 1 → merge ▁ab; (▁a,c) = 1 < 2: stop.
TEST(SpmBpe, MergesByHand) {
    const std::vector<rs::WeightedText> texts = {{"ab ab ab ac", 1.0}};
    const auto v = rs::train_spm_bpe(texts, {.vocab_size = 400, .char_coverage = 1.0, .min_pair_count = 2});
    EXPECT_EQ(learned(v), (std::vector<std::string>{"a", S, "b", "c", S + "a", S + "ab"}));
    EXPECT_EQ(v.scores[259 + 4], -1.0f);  // first merge: highest score among merges
    EXPECT_EQ(v.scores[259 + 5], -2.0f);
    EXPECT_EQ(v.types[259 + 5], rs::SpmVocab::normal);
}

// Weights count like repetitions: "xz" ×3 beats "xy" ×1, so ▁xz is merged and ▁xy is not.
TEST(SpmBpe, WeightsAreRepetitions) {
    const std::vector<rs::WeightedText> texts = {{"xy", 1.0}, {"xz", 3.0}};
    const auto v = rs::train_spm_bpe(texts, {.vocab_size = 400, .char_coverage = 1.0, .min_pair_count = 2});
    // chars: x 4, ▁ 4 (tie: "x" sorts before "▁"), z 3, y 1; pairs (▁,x) 4 → ▁x; (▁x,z) 3 → ▁xz; (▁x,y) 1:
    // stop
    EXPECT_EQ(learned(v), (std::vector<std::string>{"x", S, "z", "y", S + "x", S + "xz"}));
}

// Equal counts: the pair of lower symbol ids goes first; the vocabulary size caps the merges.
TEST(SpmBpe, TiesAndSizeLimit) {
    const std::vector<rs::WeightedText> texts = {{"pq rs", 2.0}};
    // "▁pq▁rs" ×2: chars ▁ 4, then p q r s (2 each, by text) → ids ▁=0 p=1 q=2 r=3 s=4.
    // Pairs (▁,p) (p,q) (▁,r) (r,s) all count 2: the lowest ids first: (0,1) → ▁p (id 5).
    // Then (▁p,q) = (5,2), (▁,r) = (0,3), (r,s) = (3,4): (0,3) → ▁r (6); then (5,2) → ▁pq; then (6,4) → ▁rs.
    const auto all = rs::train_spm_bpe(texts, {.vocab_size = 400, .char_coverage = 1.0, .min_pair_count = 1});
    EXPECT_EQ(learned(all),
              (std::vector<std::string>{S, "p", "q", "r", "s", S + "p", S + "r", S + "pq", S + "rs"}));
    const auto capped =
        rs::train_spm_bpe(texts, {.vocab_size = 259 + 8, .char_coverage = 1.0, .min_pair_count = 1});
    EXPECT_EQ(learned(capped), (std::vector<std::string>{S, "p", "q", "r", "s", S + "p", S + "r", S + "pq"}));
    // characters take at most 3/4 of the room: with 6 pieces, 4 characters ("s" falls back to bytes)
    const auto tight =
        rs::train_spm_bpe(texts, {.vocab_size = 259 + 6, .char_coverage = 1.0, .min_pair_count = 1});
    EXPECT_EQ(learned(tight), (std::vector<std::string>{S, "p", "q", "r", S + "p", S + "r"}));
    EXPECT_EQ(rs::train_spm_bpe(texts, {.vocab_size = 400, .char_coverage = 1.0, .min_pair_count = 1}).tokens,
              all.tokens);  // deterministic
}

// A character outside char_coverage is left to byte fallback and is a barrier: no piece spans it.
TEST(SpmBpe, RareCharactersAreBarriers) {
    const std::vector<rs::WeightedText> texts = {
        {"aaaa aaaa aaaa a\xC3\xA9"
         "a",
         1.0}};  // one "é"
    const auto v = rs::train_spm_bpe(texts, {.vocab_size = 400, .char_coverage = 0.9, .min_pair_count = 1});
    for (const auto & t : learned(v)) EXPECT_EQ(t.find("\xC3\xA9"), std::string::npos) << t;
    EXPECT_NE(std::find(v.tokens.begin(), v.tokens.end(), S + "aaaa"), v.tokens.end());
}

TEST(SpmBpe, Errors) {
    const std::vector<rs::WeightedText> texts = {{"ab", 1.0}};
    EXPECT_THROW(rs::train_spm_bpe(texts, {.vocab_size = 100}), rs::Error);
    EXPECT_THROW(rs::train_spm_bpe(std::vector<rs::WeightedText>{}, {}), rs::Error);
}

}  // namespace
