// Routing divergence (Bandarkar et al. 2025, §4.3 and Appendix A.4): expert importance q, entropy,
// KL, Jensen–Shannon and entropy-normalised JS divergence, divergence from a pivot language over
// parallel pairs (with a bootstrap CI), unpaired (corpus-mean) divergence and the language × language
// matrix.
//
// Conventions: natural logarithms; 0·log 0 = 0; distributions are length-E vectors that sum to 1 (not
// checked beyond what the formulas need). D_H-JS is *undefined* when its normaliser F = log E − H_avg falls
// below floor_rel·log E (both q close to uniform, e.g. random-weight models); such values are returned as
// nullopt and counted, never as inf or NaN. D_H-JS is not clamped: it is ≈ [0, 1] but can exceed 1 slightly
// for some pairs of very different entropy.
// Functions taking q come in float and double overloads (callers may keep per-sequence q as f32).
// Implemented in src/metrics/divergence.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "routescope/metrics_rows.h"
#include "routescope/stats.h"

namespace rs {

// Default relative floor on the D_H-JS normaliser: F < 1e-6·log E ⇒ undefined.
inline constexpr double kHjsFloorRel = 1e-6;

// ---------------------------------------------------------------------------------------------------
// Single distributions

// Expert importance of one sequence, Eq. 1: q = (1/L) Σ_t p_t, accumulated in double. out has E entries.
// Zero tokens ⇒ false (q undefined, out untouched).
bool expert_importance(const ProbRows & p, std::span<double> out);
std::vector<double> expert_importance(const ProbRows & p);  // empty when the sequence has no token

// H(q) = −Σ q log q (nats), terms with q_e ≤ 0 contribute 0.
double entropy(std::span<const double> q);
double entropy(std::span<const float> q);

// KL(a‖b) = Σ a log(a/b); nullopt (infinite) when some a_e > 0 has b_e = 0.
std::optional<double> kl_divergence(std::span<const double> a, std::span<const double> b);

// D_JS(a‖b) = ½ KL(a‖m) + ½ KL(b‖m), m = ½(a + b) (Eq. 6). Symmetric, in [0, log 2].
double js_divergence(std::span<const double> a, std::span<const double> b);
double js_divergence(std::span<const float> a, std::span<const float> b);

// D_H-JS(a‖b) = D_JS(a‖b) / F, F = log E − ½(H(a) + H(b)) (Eqs. 7–8). nullopt when F < floor_rel·log E.
std::optional<double> hjs_divergence(std::span<const double> a, std::span<const double> b,
                                     double floor_rel = kHjsFloorRel);
std::optional<double> hjs_divergence(std::span<const float> a, std::span<const float> b,
                                     double floor_rel = kHjsFloorRel);
// The same with H(a) and H(b) given (= entropy(a), entropy(b)), for callers that pair one q many times.
std::optional<double> hjs_divergence_given_entropies(std::span<const double> a, std::span<const double> b,
                                                     double h_a, double h_b, double floor_rel = kHjsFloorRel);

// How D_H-JS treats a vanishing normaliser F = log E − ½(H(a) + H(b)) (analyze --normaliser):
//   undefined — routescope's default, the paper's Eq. 7 as printed (it states no rule for F → 0): F below
//               floor_rel·log E ⇒ undefined (nullopt), skipped in means and counted;
//   clamp     — Bandarkar et al.'s code (lucasbandarkar/xl_moe_alignment, routing_analysis/
//               analysis_helpers.py, calculate_entropy_normalized_jsd): F = max(log E − ½(H(a)+H(b)), 1e-6)
//               (an absolute 1e-6), so every pair is defined and near-uniform pairs weigh up to D_JS·1e6.
enum class HjsNormaliser { undefined, clamp };
inline constexpr double kHjsClampAbs = 1e-6;  // the authors' torch.clamp(max_possible_js, min=1e-6)

// D_H-JS with H(a), H(b) given and the normaliser rule chosen (undefined: as the overload above with
// kHjsFloorRel). nullopt for E ≤ 1, and with `undefined` when F < kHjsFloorRel·log E.
std::optional<double> hjs_divergence_given_entropies(std::span<const double> a, std::span<const double> b,
                                                     double h_a, double h_b, HjsNormaliser mode);

// The same with log a_e and log b_e given too (any value where the entry is 0), for callers that pair one q
// many times (analyze pairs every member of a parallel group with every other): D_JS as
// ½ Σ_e [a_e (log a_e − log m_e) + b_e (log b_e − log m_e)], one logarithm per expert instead of two and no
// division; within a few ulp of hjs_divergence, exactly 0 for a = b and symmetric bit for bit.
std::optional<double> hjs_divergence_given_logs(std::span<const double> a, std::span<const double> b,
                                                std::span<const double> log_a, std::span<const double> log_b,
                                                double h_a, double h_b, HjsNormaliser mode);
// What hjs_divergence_given_logs returns for b = a, without its E logarithms: D_JS(a‖a) = 0 exactly
// (m = ½(a + a) = a in floating point, so every term is 0), hence 0 wherever the normaliser
// F = log E − H(a) is defined under `mode`, nullopt where it is not (analyze pairs each language with itself
// on the matrix's diagonal, and the pivot with itself).
std::optional<double> hjs_divergence_self(size_t n_expert, double h_a, HjsNormaliser mode);

// ---------------------------------------------------------------------------------------------------
// Divergence from a pivot over parallel pairs (Eq. 2)

struct DivergenceOptions {
    double floor_rel = kHjsFloorRel;
    BootstrapOptions bootstrap;
};

struct PairedDivergence {
    double mean = 0.0;        // mean of D_H-JS over defined pairs; 0 when n_defined == 0
    ConfidenceInterval ci;    // percentile bootstrap over defined pairs; [mean, mean] when n_defined ≤ 1
    int64_t n_pairs = 0;      // pairs given
    int64_t n_defined = 0;    // pairs with a defined D_H-JS
    int64_t n_undefined = 0;  // pairs skipped because the normaliser was below the floor
    bool defined() const { return n_defined > 0; }
};

// D_H-JS of each pair: pivot and lang are [n_pairs × E] (row i of both is parallel group i).
std::vector<std::optional<double>> pairwise_hjs(std::span<const double> pivot, std::span<const double> lang,
                                                int n_expert, double floor_rel = kHjsFloorRel);
std::vector<std::optional<double>> pairwise_hjs(std::span<const float> pivot, std::span<const float> lang,
                                                int n_expert, double floor_rel = kHjsFloorRel);

// Mean over pairs (in pair order), skipping and counting undefined pairs, plus the bootstrap CI.
PairedDivergence summarise_pairs(std::span<const std::optional<double>> values, const BootstrapOptions & bs);

// Div(lang, l) of Eq. 2 with its CI: pairwise_hjs then summarise_pairs.
PairedDivergence paired_divergence(std::span<const double> pivot, std::span<const double> lang, int n_expert,
                                   const DivergenceOptions & opt = {});
PairedDivergence paired_divergence(std::span<const float> pivot, std::span<const float> lang, int n_expert,
                                   const DivergenceOptions & opt = {});

// ---------------------------------------------------------------------------------------------------
// Unpaired divergence (domains): D_H-JS of the corpus-mean q of two corpora.

// Mean of the rows of q [n × E] (the corpus-mean importance); empty when n == 0.
std::vector<double> mean_importance(std::span<const double> q, int n_expert);

std::optional<double> unpaired_divergence(std::span<const double> mean_q1, std::span<const double> mean_q2,
                                          double floor_rel = kHjsFloorRel);

// ---------------------------------------------------------------------------------------------------
// Language × language matrix for one layer

struct DivergenceMatrix {
    int n = 0;                       // languages
    std::vector<double> value;       // [n × n] mean D_H-JS over groups both languages have; 0 when undefined
    std::vector<int64_t> n_defined;  // [n × n] pairs that entered the mean
    std::vector<int64_t> n_undefined;  // [n × n] pairs skipped (normaliser below the floor)

    bool defined(int a, int b) const { return a == b || n_defined[(size_t)a * n + b] > 0; }
    double at(int a, int b) const { return value[(size_t)a * n + b]; }
    // value with undefined cells replaced by the largest defined off-diagonal value (for clustering);
    // all zeros when nothing is defined
    std::vector<double> distances_filled() const;
};

// q: [n_lang × n_group × E] per-language per-group importance; present: [n_lang × n_group] 0/1 flags
// (empty ⇒ all present). Cell (a, b) = mean over groups g present in both of D_H-JS(q_a,g ‖ q_b,g).
// The matrix is symmetric with a zero diagonal (D_JS and F are symmetric).
DivergenceMatrix divergence_matrix(std::span<const double> q, int n_lang, int64_t n_group, int n_expert,
                                   std::span<const uint8_t> present = {}, double floor_rel = kHjsFloorRel);
DivergenceMatrix divergence_matrix(std::span<const float> q, int n_lang, int64_t n_group, int n_expert,
                                   std::span<const uint8_t> present = {}, double floor_rel = kHjsFloorRel);

}  // namespace rs
