// Evaluation answer extraction and scoring: the final number of a generated MGSM/GSM8K answer, exact match
// after normalisation, and the multiple-choice prediction from per-option log-likelihoods.
//
// Conventions (docs/steering-and-evaluation.md; Shi et al. 2023 MGSM; Cobbe et al. 2021 GSM8K):
// - The generation is first cut at the earliest stop string (e.g. "\n\nQuestion:"), then the LAST number in
//   what remains is the prediction ("flexible extract" of the LM Evaluation Harness, which the paper used).
// - A number is an optional sign ('-', '+', U+2212 minus) directly before digits (or before a currency sign
//   and digits), digits with ',' thousands separators (a ',' only counts when a digit follows), and an
//   optional '.' fraction (a '.' only counts when a digit follows, so "42." ends at 42). A '-' directly after
//   a letter or digit is a hyphen, not a sign ("3-4" gives 3 and 4). Currency signs $ € £ ¥ are skipped.
// - Numbers use the English convention ("1,234.5"); a European "3,5" reads as 35. Non-ASCII decimal digits
//   (Bengali, Devanagari, Telugu, Thai, Arabic-Indic, full-width) are read only with native_digits = true;
//   the default (false) matches the paper's harness, whose regex only knows 0-9.
// - Normalisation (both gold and prediction): drop ',', '$', spaces and a leading '+', map U+2212 to '-',
//   drop leading zeros of the integer part and trailing zeros of the fraction ("3.50" -> "3.5",
//   "12.0" -> "12", "-0" -> "0"). An empty prediction never matches.
// - Multiple choice: argmax of the log-likelihoods of the continuations " A", " B", ...; ties go to the
// lowest
//   index. McNorm::per_byte / per_token divide each log-likelihood by the continuation's length first
//   (lm-eval "acc_norm" uses bytes); with the one-letter continuations all variants agree.
// Implemented in src/eval_harness/extract.cpp.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rs {

struct ExtractOptions {
    bool native_digits = false;  // also read non-ASCII decimal digits (see above)
};

// Cuts `text` at the earliest occurrence of any non-empty stop string; unchanged when none occurs.
std::string_view truncate_at_stop(std::string_view text, std::span<const std::string> stops);

// All numbers in `text`, in order, normalised (see above); "" entries never occur.
std::vector<std::string> extract_numbers(std::string_view text, const ExtractOptions & opt = {});

// The last number in `text`, normalised; "" when there is none.
std::string extract_last_number(std::string_view text, const ExtractOptions & opt = {});

// Normalises one number string (gold or prediction). Returns "" when `s` holds no number after the
// characters above are dropped (e.g. "", "abc", "1.2.3").
std::string normalize_number(std::string_view s);

// Exact match after normalisation; false when either side normalises to "".
bool numbers_match(std::string_view gold, std::string_view pred);

struct MathScore {
    std::string pred;  // the normalised last number, "" when none
    bool correct = false;
};

// Truncates at the stop strings, extracts the last number and compares with `gold`.
MathScore score_math(std::string_view gold, std::string_view generated, std::span<const std::string> stops,
                     const ExtractOptions & opt = {});

// lm-evaluation-harness's mgsm_direct "flexible-extract" filter and metric (lm_eval/tasks/mgsm/direct/
// direct_yaml, version 4.0): truncate at the stop strings; the last match of the regex
// (-?[$0-9.,]{2,})|(-?[0-9]+), its non-empty group, stripped ("[invalid]" when none matches); then
// exact_match with ignore_case and ignore_punctuation (Python's string.punctuation removed from both
// sides, so "1,000" = "1000" and "-5" = "5", but "18.00" ≠ "18"). pred is that filtered string.
MathScore score_mgsm_flexible(std::string_view gold, std::string_view generated,
                              std::span<const std::string> stops);

// ---------------------------------------------------------------------------------------------------
// Multiple choice

enum class McNorm { none, per_byte, per_token };

// log softmax(logits)[index] = logits[index] − log Σ_v exp(logits[v]), in double with the max subtracted
// first (so large logits do not overflow): the log-probability of one token under a row of output logits.
double log_softmax_at(std::span<const float> logits, int32_t index);

// Unicode code points of UTF-8 text: the bytes that do not continue a sequence (not 10xxxxxx), so a
// malformed byte counts as one character. The denominator of bits per character (`ppl`).
int64_t utf8_code_points(std::string_view text);

// Bits per character: a text's summed NLL in nats over its n_chars characters, Σ −ln p / ln 2 / n_chars.
double bits_per_char(double nll_nats, int64_t n_chars);

// Index of the largest log-likelihood, ties to the lowest index; -1 when empty. NaN never wins.
int mc_argmax(std::span<const double> loglik);

// argmax of loglik[i] / length[i] (length in bytes or tokens of continuation i, each > 0).
int mc_argmax_normalized(std::span<const double> loglik, std::span<const int64_t> length);

struct McScore {
    int pred = -1;  // predicted option index, -1 when there are no options
    bool correct = false;
};

// Scores one item: loglik[i] = log P(continuation i | prompt); n_bytes / n_tokens give the continuation
// lengths and are only read for the matching McNorm (may be empty otherwise).
McScore score_mc(std::span<const double> loglik, int gold, McNorm norm = McNorm::none,
                 std::span<const int64_t> n_bytes = {}, std::span<const int64_t> n_tokens = {});

// "A", "B", ... for option index i (0 ≤ i < 26); "" otherwise (used as the `pred` column of results.csv).
std::string mc_letter(int i);

}  // namespace rs
