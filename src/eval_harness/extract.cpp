// Answer extraction and scoring for the evaluation harness (routescope/eval_extract.h): the last number of a
// generated MGSM/GSM8K answer, number normalisation, and the multiple-choice argmax over log-likelihoods.
//
// Limits: the scanner works on UTF-8 code points and treats an invalid byte as one unknown code point; it
// knows the decimal digits of the scripts listed in the header and nothing about spelled-out numbers
// ("twelve"), fractions ("1/2" gives 1 and 2) or scientific notation.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

#include "routescope/common.h"
#include "routescope/eval_extract.h"

namespace rs {
namespace {

constexpr char32_t kInvalid = 0xFFFD;

// Decodes UTF-8 into code points; an invalid or truncated sequence yields U+FFFD for its first byte.
std::vector<char32_t> decode_utf8(std::string_view s) {
    std::vector<char32_t> out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        const auto b0 = static_cast<unsigned char>(s[i]);
        int len = b0 < 0x80 ? 1 : (b0 >> 5) == 0x6 ? 2 : (b0 >> 4) == 0xE ? 3 : (b0 >> 3) == 0x1E ? 4 : 0;
        if (len == 0 || i + (size_t)len > s.size()) {
            out.push_back(kInvalid);
            ++i;
            continue;
        }
        char32_t cp = len == 1 ? b0 : len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
        bool ok = true;
        for (int k = 1; k < len; ++k) {
            const auto b = static_cast<unsigned char>(s[i + (size_t)k]);
            if ((b & 0xC0) != 0x80) ok = false;
            cp = (cp << 6) | (b & 0x3F);
        }
        if (!ok) {
            out.push_back(kInvalid);
            ++i;
            continue;
        }
        out.push_back(cp);
        i += (size_t)len;
    }
    return out;
}

// Zero code points of the decimal digit blocks read with native_digits (Unicode Nd, 10 consecutive values).
constexpr char32_t kNativeZeros[] = {
    0x0660,  // Arabic-Indic
    0x06F0,  // Extended Arabic-Indic (Persian, Urdu)
    0x0966,  // Devanagari
    0x09E6,  // Bengali
    0x0C66,  // Telugu
    0x0E50,  // Thai
    0xFF10,  // full-width
};

// The digit value of cp, or -1.
int digit_value(char32_t cp, bool native) {
    if (cp >= U'0' && cp <= U'9') return (int)(cp - U'0');
    if (!native) return -1;
    for (const char32_t z : kNativeZeros)
        if (cp >= z && cp < z + 10) return (int)(cp - z);
    return -1;
}

bool is_minus(char32_t cp) {
    return cp == U'-' || cp == 0x2212;
}
bool is_sign(char32_t cp) {
    return is_minus(cp) || cp == U'+';
}
bool is_currency(char32_t cp) {
    return cp == U'$' || cp == 0x20AC || cp == 0x00A3 || cp == 0x00A5;
}

// A "word" character before a '-' makes it a hyphen: ASCII letters/digits, any digit, any non-ASCII
// letter-like code point (everything above U+007F except general punctuation, spaces and CJK punctuation).
bool is_word(char32_t cp, bool native) {
    if (digit_value(cp, native) >= 0) return true;
    if ((cp >= U'a' && cp <= U'z') || (cp >= U'A' && cp <= U'Z')) return true;
    if (cp < 0x80) return false;
    if (cp >= 0x2000 && cp <= 0x206F) return false;  // general punctuation, spaces
    if (cp >= 0x3000 && cp <= 0x303F) return false;  // CJK symbols and punctuation
    if (cp >= 0xFF00 && cp <= 0xFF0F) return false;  // full-width punctuation
    if (cp == 0x00A0 || cp == kInvalid) return false;
    return true;
}

// Canonical form of a number given as sign + integer digits + fraction digits (all ASCII).
std::string canonical(bool negative, std::string int_digits, std::string frac_digits) {
    while (!frac_digits.empty() && frac_digits.back() == '0') frac_digits.pop_back();
    const size_t nz = int_digits.find_first_not_of('0');
    int_digits = nz == std::string::npos ? "0" : int_digits.substr(nz);
    const bool zero = int_digits == "0" && frac_digits.empty();
    std::string out = negative && !zero ? "-" : "";
    out += int_digits;
    if (!frac_digits.empty()) out += "." + frac_digits;
    return out;
}

}  // namespace

std::string_view truncate_at_stop(std::string_view text, std::span<const std::string> stops) {
    size_t cut = text.size();
    for (const std::string & s : stops) {
        if (s.empty()) continue;
        cut = std::min(cut, text.find(s));  // npos is larger than any position
    }
    return text.substr(0, cut);
}

std::vector<std::string> extract_numbers(std::string_view text, const ExtractOptions & opt) {
    const std::vector<char32_t> cp = decode_utf8(text);
    const size_t n = cp.size();
    const bool nat = opt.native_digits;
    const auto digit = [&](size_t j) { return j < n ? digit_value(cp[j], nat) : -1; };
    std::vector<std::string> out;
    size_t i = 0;
    while (i < n) {
        // Optional sign (not after a word character), then an optional currency sign, then a digit.
        size_t j = i;
        bool negative = false;
        if (is_sign(cp[j]) && !(j > 0 && is_word(cp[j - 1], nat))) {
            negative = is_minus(cp[j]);
            ++j;
        }
        if (j < n && is_currency(cp[j])) ++j;
        if (digit(j) < 0) {
            ++i;
            continue;
        }
        std::string int_digits, frac_digits;
        for (;; ++j) {
            const int d = digit(j);
            if (d >= 0) {
                int_digits += (char)('0' + d);
            } else if (j < n && cp[j] == U',' && digit(j + 1) >= 0) {
                continue;  // thousands separator
            } else {
                break;
            }
        }
        if (j < n && cp[j] == U'.' && digit(j + 1) >= 0) {
            for (++j; digit(j) >= 0; ++j) frac_digits += (char)('0' + digit(j));
        }
        out.push_back(canonical(negative, std::move(int_digits), std::move(frac_digits)));
        i = j;
    }
    return out;
}

std::string extract_last_number(std::string_view text, const ExtractOptions & opt) {
    std::vector<std::string> all = extract_numbers(text, opt);
    return all.empty() ? std::string() : std::move(all.back());
}

std::string normalize_number(std::string_view s) {
    // Drop the decorations, then require exactly one well-formed number: [-]digits[.digits].
    std::string t;
    for (const char32_t c : decode_utf8(s)) {
        if (c == U',' || c == U' ' || c == U'+' || is_currency(c) || c == 0x00A0) continue;
        if (c == 0x2212) {
            t += '-';
            continue;
        }
        if (c >= 0x80) return "";
        t += (char)c;
    }
    bool negative = false;
    size_t i = 0;
    if (i < t.size() && t[i] == '-') {
        negative = true;
        ++i;
    }
    std::string int_digits, frac_digits;
    for (; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i) int_digits += t[i];
    if (i < t.size() && t[i] == '.') {
        for (++i; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i) frac_digits += t[i];
    }
    if (i != t.size() || (int_digits.empty() && frac_digits.empty())) return "";
    return canonical(negative, std::move(int_digits), std::move(frac_digits));
}

bool numbers_match(std::string_view gold, std::string_view pred) {
    const std::string g = normalize_number(gold), p = normalize_number(pred);
    return !g.empty() && g == p;
}

MathScore score_math(std::string_view gold, std::string_view generated, std::span<const std::string> stops,
                     const ExtractOptions & opt) {
    MathScore s;
    s.pred = extract_last_number(truncate_at_stop(generated, stops), opt);
    s.correct = numbers_match(gold, s.pred);
    return s;
}

// The matches of (-?[$0-9.,]{2,})|(-?[0-9]+) as Python's re.findall finds them: leftmost first, the first
// alternative before the second, greedy, non-overlapping. Written out (no std::regex: GCC 12 reports
// false -Wmaybe-uninitialized in <regex> under the sanitizers).
static std::vector<std::string> harness_number_matches(std::string_view t) {
    const auto run = [&](size_t i, auto && in_class) {
        size_t j = i;
        while (j < t.size() && in_class(t[j])) ++j;
        return j - i;
    };
    const auto wide = [](char c) { return c == '$' || c == '.' || c == ',' || (c >= '0' && c <= '9'); };
    const auto digit = [](char c) { return c >= '0' && c <= '9'; };
    std::vector<std::string> out;
    for (size_t i = 0; i < t.size();) {
        const size_t sign = t[i] == '-' ? 1 : 0;  // '-' is in neither class: only the optional sign takes it
        size_t len = 0;
        if (const size_t w = run(i + sign, wide); w >= 2)
            len = sign + w;  // -?[$0-9.,]{2,}
        else if (const size_t d = run(i + sign, digit); d >= 1)
            len = sign + d;  // -?[0-9]+
        if (len == 0) {
            ++i;
            continue;
        }
        out.emplace_back(t.substr(i, len));
        i += len;
    }
    return out;
}

MathScore score_mgsm_flexible(std::string_view gold, std::string_view generated,
                              std::span<const std::string> stops) {
    const auto matches = harness_number_matches(truncate_at_stop(generated, stops));
    MathScore s;
    s.pred = matches.empty() ? "[invalid]" : matches.back();  // group_select: -1; the filter's fallback
    // exact_match(ignore_case, ignore_punctuation): lower-case, drop string.punctuation
    auto canon = [](std::string_view v) {
        static constexpr std::string_view kPunct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
        std::string out;
        for (char c : v)
            if (kPunct.find(c) == std::string_view::npos) out += (char)std::tolower((unsigned char)c);
        return out;
    };
    const auto trim = [](std::string v) {
        const auto b = v.find_first_not_of(" \t\n\r\f\v"), e = v.find_last_not_of(" \t\n\r\f\v");
        return b == std::string::npos ? std::string() : v.substr(b, e - b + 1);
    };
    s.pred = trim(s.pred);
    s.correct = canon(s.pred) == canon(trim(std::string(gold)));
    return s;
}

// ---------------------------------------------------------------------------------------------------
// Multiple choice

int64_t utf8_code_points(std::string_view text) {
    int64_t n = 0;
    for (char c : text) n += ((unsigned char)c & 0xC0) != 0x80;
    return n;
}

double bits_per_char(double nll_nats, int64_t n_chars) {
    return n_chars > 0 ? nll_nats / std::log(2.0) / (double)n_chars
                       : std::numeric_limits<double>::quiet_NaN();
}

double log_softmax_at(std::span<const float> logits, int32_t index) {
    RS_ASSERT(index >= 0 && (size_t)index < logits.size());
    double zmax = -INFINITY;
    for (float v : logits) zmax = std::max(zmax, (double)v);
    double sum = 0.0;
    for (float v : logits) sum += std::exp((double)v - zmax);
    return (double)logits[(size_t)index] - zmax - std::log(sum);
}

int mc_argmax(std::span<const double> loglik) {
    int best = -1;
    for (size_t i = 0; i < loglik.size(); ++i) {
        if (std::isnan(loglik[i])) continue;
        if (best < 0 || loglik[i] > loglik[(size_t)best]) best = (int)i;  // strict '>' keeps the lowest index
    }
    if (best < 0 && !loglik.empty()) best = 0;  // all NaN: fall back to the first option
    return best;
}

int mc_argmax_normalized(std::span<const double> loglik, std::span<const int64_t> length) {
    RS_ASSERT(loglik.size() == length.size());
    std::vector<double> norm(loglik.size());
    for (size_t i = 0; i < loglik.size(); ++i) {
        RS_ASSERT(length[i] > 0);
        norm[i] = loglik[i] / (double)length[i];
    }
    return mc_argmax(norm);
}

McScore score_mc(std::span<const double> loglik, int gold, McNorm norm, std::span<const int64_t> n_bytes,
                 std::span<const int64_t> n_tokens) {
    McScore s;
    switch (norm) {
        case McNorm::none:
            s.pred = mc_argmax(loglik);
            break;
        case McNorm::per_byte:
            s.pred = mc_argmax_normalized(loglik, n_bytes);
            break;
        case McNorm::per_token:
            s.pred = mc_argmax_normalized(loglik, n_tokens);
            break;
    }
    s.correct = s.pred >= 0 && s.pred == gold;
    return s;
}

std::string mc_letter(int i) {
    return i >= 0 && i < 26 ? std::string(1, (char)('A' + i)) : std::string();
}

}  // namespace rs
