// eval_extract.h: last-number extraction on hand-made model outputs (signs, thousands separators, decimals,
// currency, unicode minus, hyphens, stop strings, native digits, no number), normalisation and exact match,
// and the multiple-choice argmax from hand-made log-likelihoods (ties, NaN, length normalisation).
// Every expected value is written out by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "routescope/eval_extract.h"

namespace {

using rs::extract_last_number;

struct Case {
    const char * text;
    const char * expected;
};

TEST(ExtractLastNumber, HandMadeOutputs) {
    const Case cases[] = {
        {" 18", "18"},                                                          // the direct answer format
        {" Janet sells 16 - 3 - 4 = 9 eggs, so she makes 9 * 2 = $18.", "18"},  // '$', sentence dot
        {"The answer is 1,234.", "1234"},                                       // thousands separator
        {"It costs $1,234,567.00 in total", "1234567"},                         // ",", ".00" dropped
        {"The temperature dropped to -7 degrees", "-7"},                        // sign
        {"The result is \u22125", "-5"},                                        // U+2212 minus
        {"He pays 3.50 per cup", "3.5"},                                        // trailing zero dropped
        {"The answer is 12.0", "12"},                                           // ".0" dropped
        {"Between 3-4 apples", "4"},                                            // hyphen is not a sign
        {"She lost -$5 on the bet", "-5"},                                      // sign before currency
        {"Items: 1, 2, 3", "3"},                            // ", " is a list, not grouping
        {"I do not know.", ""},                             // no number
        {"", ""},                                           // empty generation
        {"Total: 007 points", "7"},                         // leading zeros
        {"答案是 42。", "42"},                              // CJK punctuation around
        {"x = +8", "8"},                                    // '+' sign dropped
        {"Es sind 0.0 Euro", "0"},                          // zero
        {"Step 1: 5 + 5 = 10\nStep 2: 10 * 3 = 30", "30"},  // multi-line
    };
    for (const Case & c : cases) EXPECT_EQ(extract_last_number(c.text), c.expected) << "text: " << c.text;
}

TEST(ExtractNumbers, AllInOrder) {
    const std::vector<std::string> expected = {"16", "3", "4", "9", "-2.5"};
    EXPECT_EQ(rs::extract_numbers("16 eggs, 3-4 left (9) and -2.50."), expected);
}

TEST(ExtractLastNumber, NativeDigitsOnlyWhenAsked) {
    // Bengali ১২৩ (U+09E7 U+09E8 U+09E9), Thai ๔๕ (U+0E54 U+0E55), full-width ７ (U+FF17).
    const std::string bengali = "উত্তর হল ১২৩";
    EXPECT_EQ(extract_last_number(bengali), "");
    EXPECT_EQ(extract_last_number(bengali, {.native_digits = true}), "123");
    EXPECT_EQ(extract_last_number("คำตอบคือ ๔๕", {.native_digits = true}), "45");
    EXPECT_EQ(extract_last_number("答え：７", {.native_digits = true}), "7");
    // ASCII digits after native ones: the last one wins either way.
    EXPECT_EQ(extract_last_number("১২ then 30", {.native_digits = true}), "30");
}

TEST(ExtractLastNumber, InvalidUtf8IsSkipped) {
    const std::string text = std::string("value \xff\xfe 41 and \xc3") + "";
    EXPECT_EQ(extract_last_number(text), "41");
}

TEST(TruncateAtStop, EarliestStopWins) {
    const std::vector<std::string> stops = {"\n\nQuestion:", "Question:", ""};
    EXPECT_EQ(rs::truncate_at_stop(" 18\n\nQuestion: How many 99 apples", stops), " 18");
    EXPECT_EQ(rs::truncate_at_stop(" 7 Question: 8", stops), " 7 ");
    EXPECT_EQ(rs::truncate_at_stop(" 42", stops), " 42");
    EXPECT_EQ(rs::truncate_at_stop(" 42", {}), " 42");
}

TEST(ScoreMath, StopsBeforeTheNextQuestion) {
    const std::vector<std::string> stops = {"\n\nQuestion:"};
    // Without the stop the last number would be 99 from the hallucinated next question.
    rs::MathScore s = rs::score_math("18", " 18\n\nQuestion: Tom has 99 marbles", stops);
    EXPECT_EQ(s.pred, "18");
    EXPECT_TRUE(s.correct);
    s = rs::score_math("1234", "It is 1,234.00 dollars", stops);
    EXPECT_EQ(s.pred, "1234");
    EXPECT_TRUE(s.correct);
    s = rs::score_math("5", "no idea", stops);
    EXPECT_EQ(s.pred, "");
    EXPECT_FALSE(s.correct);
    s = rs::score_math("5", " 6", stops);
    EXPECT_EQ(s.pred, "6");
    EXPECT_FALSE(s.correct);
}

TEST(NormalizeNumber, GoldAndPrediction) {
    EXPECT_EQ(rs::normalize_number("114,200"), "114200");
    EXPECT_EQ(rs::normalize_number("12.0"), "12");
    EXPECT_EQ(rs::normalize_number("12.50"), "12.5");
    EXPECT_EQ(rs::normalize_number("$5"), "5");
    EXPECT_EQ(rs::normalize_number("+3"), "3");
    EXPECT_EQ(rs::normalize_number("\u22123"), "-3");
    EXPECT_EQ(rs::normalize_number("-0"), "0");
    EXPECT_EQ(rs::normalize_number(".5"), "0.5");
    EXPECT_EQ(rs::normalize_number(" 1 000 "), "1000");
    EXPECT_EQ(rs::normalize_number(""), "");
    EXPECT_EQ(rs::normalize_number("abc"), "");
    EXPECT_EQ(rs::normalize_number("1.2.3"), "");
    EXPECT_EQ(rs::normalize_number("-"), "");
}

TEST(NumbersMatch, ExactAfterNormalisation) {
    EXPECT_TRUE(rs::numbers_match("1234", "1,234"));
    EXPECT_TRUE(rs::numbers_match("12", "12.00"));
    EXPECT_TRUE(rs::numbers_match("-7", "\u22127"));
    EXPECT_FALSE(rs::numbers_match("12", "12.5"));
    EXPECT_FALSE(rs::numbers_match("12", "-12"));
    EXPECT_FALSE(rs::numbers_match("", ""));  // an empty prediction never matches
    EXPECT_FALSE(rs::numbers_match("5", ""));
}

// ---------------------------------------------------------------------------------------------------
// Multiple choice

TEST(McArgmax, PicksLargestLogLikelihood) {
    const std::vector<double> ll = {-4.2, -1.3, -2.7, -9.0};
    EXPECT_EQ(rs::mc_argmax(ll), 1);
    EXPECT_EQ(rs::mc_argmax(std::vector<double>{}), -1);
}

TEST(McArgmax, TiesGoToLowestIndex) {
    EXPECT_EQ(rs::mc_argmax(std::vector<double>{-2.0, -1.0, -1.0, -3.0}), 1);
    EXPECT_EQ(rs::mc_argmax(std::vector<double>{-1.0, -1.0, -1.0, -1.0}), 0);
}

TEST(McArgmax, NanNeverWins) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    EXPECT_EQ(rs::mc_argmax(std::vector<double>{nan, -5.0, -6.0}), 1);
    EXPECT_EQ(rs::mc_argmax(std::vector<double>{nan, nan}), 0);
    EXPECT_EQ(rs::mc_argmax(std::vector<double>{-std::numeric_limits<double>::infinity(), -50.0}), 1);
}

TEST(McArgmax, LengthNormalisedChangesTheWinner) {
    // Raw: -6 > -8 ⇒ A. Per byte: -6/2 = -3 vs -8/4 = -2 ⇒ B. Per token: -6/3 = -2 vs -8/2 = -4 ⇒ A.
    const std::vector<double> ll = {-6.0, -8.0};
    const std::vector<int64_t> bytes = {2, 4}, tokens = {3, 2};
    EXPECT_EQ(rs::mc_argmax_normalized(ll, bytes), 1);
    rs::McScore s = rs::score_mc(ll, 0);
    EXPECT_EQ(s.pred, 0);
    EXPECT_TRUE(s.correct);
    s = rs::score_mc(ll, 0, rs::McNorm::per_byte, bytes, {});
    EXPECT_EQ(s.pred, 1);
    EXPECT_FALSE(s.correct);
    s = rs::score_mc(ll, 0, rs::McNorm::per_token, {}, tokens);
    EXPECT_EQ(s.pred, 0);
    EXPECT_TRUE(s.correct);
}

TEST(McScore, FourOptionsAndLetters) {
    // Belebele-like: gold C; log-likelihoods of " A" .. " D".
    const std::vector<double> ll = {-3.1, -2.2, -0.4, -5.0};
    const rs::McScore s = rs::score_mc(ll, 2);
    EXPECT_EQ(s.pred, 2);
    EXPECT_TRUE(s.correct);
    EXPECT_EQ(rs::mc_letter(s.pred), "C");
    EXPECT_EQ(rs::mc_letter(0), "A");
    EXPECT_EQ(rs::mc_letter(-1), "");
    EXPECT_FALSE(rs::score_mc(std::vector<double>{}, 0).correct);
}

// log softmax against hand values: logits (0, ln 2, ln 3) give p = (1/6, 2/6, 3/6).
TEST(BitsPerChar, CodePointsAndHandValues) {
    EXPECT_EQ(rs::utf8_code_points(""), 0);
    EXPECT_EQ(rs::utf8_code_points("abc"), 3);
    EXPECT_EQ(rs::utf8_code_points("h\xc3\xa9llo"), 5);              // é: 2 bytes
    EXPECT_EQ(rs::utf8_code_points("\xe6\x97\xa5\xe6\x9c\xac"), 2);  // 日本: 3 bytes each
    EXPECT_EQ(rs::utf8_code_points("\xf0\x9f\x98\x80!"), 2);         // U+1F600: 4 bytes
    EXPECT_EQ(rs::utf8_code_points("\xff\xfe"), 2);                  // malformed bytes count once each
    // 8 characters predicted with total NLL 8·ln 2 nats: 1 bit each
    EXPECT_DOUBLE_EQ(rs::bits_per_char(8 * std::log(2.0), 8), 1.0);
    EXPECT_NEAR(rs::bits_per_char(3.0, 4), 3.0 / 0.6931471805599453 / 4, 1e-15);
    EXPECT_TRUE(std::isnan(rs::bits_per_char(1.0, 0)));
}

TEST(LogSoftmax, HandValuesAndLargeLogits) {
    const std::vector<float> z = {0.0f, (float)std::log(2.0), (float)std::log(3.0)};
    EXPECT_NEAR(rs::log_softmax_at(z, 0), std::log(1.0 / 6.0), 1e-7);
    EXPECT_NEAR(rs::log_softmax_at(z, 2), std::log(0.5), 1e-7);
    // a shift by 1000 changes nothing (no overflow); one logit alone has probability 1
    const std::vector<float> big = {1000.0f, 1000.0f + (float)std::log(2.0), 1000.0f + (float)std::log(3.0)};
    EXPECT_NEAR(rs::log_softmax_at(big, 1), std::log(2.0 / 6.0), 1e-4);
    EXPECT_EQ(rs::log_softmax_at(std::vector<float>{-7.5f}, 0), 0.0);
    // a −inf logit (a masked token) has log-probability −inf, the rest stay finite
    const std::vector<float> masked = {0.0f, -INFINITY};
    EXPECT_EQ(rs::log_softmax_at(masked, 0), 0.0);
    EXPECT_TRUE(std::isinf(rs::log_softmax_at(masked, 1)));
}

}  // namespace

// lm-eval's mgsm_direct flexible-extract, by hand: the last regex match, then exact match without case
// and punctuation.
TEST(MgsmFlexible, LastMatchWithoutPunctuation) {
    const std::vector<std::string> stops = {"Question:", "</s>", "<|im_end|>"};
    auto s = rs::score_mgsm_flexible("18", " 3 + 15 = 18 eggs\nQuestion: next", stops);
    EXPECT_EQ(s.pred, "18");  // "3", "15", "18": the last; "next" after the stop is gone
    EXPECT_TRUE(s.correct);
    s = rs::score_mgsm_flexible("1000", " $1,000.", stops);
    EXPECT_EQ(s.pred, "$1,000.");  // [$0-9.,]{2,} keeps the sign and separators …
    EXPECT_TRUE(s.correct);        // … which ignore_punctuation then drops: "1000"
    s = rs::score_mgsm_flexible("18", " 18.00", stops);
    EXPECT_EQ(s.pred, "18.00");
    EXPECT_FALSE(s.correct);  // "1800" ≠ "18": the harness does not parse numbers
    s = rs::score_mgsm_flexible("5", " -5", stops);
    EXPECT_TRUE(s.correct);  // '-' is punctuation
    s = rs::score_mgsm_flexible("7", " seven", stops);
    EXPECT_EQ(s.pred, "[invalid]");
    EXPECT_FALSE(s.correct);
    s = rs::score_mgsm_flexible("7", " 7", stops);  // a single digit: the second alternative
    EXPECT_EQ(s.pred, "7");
    EXPECT_TRUE(s.correct);
    s = rs::score_mgsm_flexible("12", "12</s>34", stops);
    EXPECT_EQ(s.pred, "12");
    // the regex's own choices, as Python's re.findall makes them: "--5" → "-5", "a-12.5b x" → "-12.5",
    // "$." is a match of the first alternative, a lone "-" none
    EXPECT_EQ(rs::score_mgsm_flexible("5", "--5", stops).pred, "-5");
    EXPECT_EQ(rs::score_mgsm_flexible("125", "a-12.5b x", stops).pred, "-12.5");
    EXPECT_EQ(rs::score_mgsm_flexible("0", "3 then $.", stops).pred, "$.");
    EXPECT_EQ(rs::score_mgsm_flexible("0", "4 - ", stops).pred, "4");
}
