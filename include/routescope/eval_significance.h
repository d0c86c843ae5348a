// Paired significance tests for base vs steered evaluations (Bandarkar et al. 2025, Table 2;
// docs/steering-and-evaluation.md): McNemar's test per language, the paired bootstrap CI of the accuracy
// delta, and the sign test across languages.
//
// All tests are two-sided and exact where it matters:
// - McNemar (1947), exact binomial form: with b = #(base right, steered wrong) and c = #(base wrong, steered
//   right), under H0 the discordant pairs split Bin(b + c, ½), so p = min(1, 2·P(X ≤ min(b, c))).
//   b + c = 0 gives p = 1. The chi-square form with continuity correction (Edwards 1948),
//   χ² = (|b − c| − 1)² / (b + c) on 1 df, is offered for comparison; it is a poor approximation for
//   b + c < 25, which is why the exact form is the default everywhere.
// - Sign test (Dixon & Mood 1946): per-language deltas > 0 and < 0 are counted, zeros dropped, and the
//   counts tested with the same two-sided exact binomial.
// - Paired bootstrap (Efron & Tibshirani 1993, §16; Koehn 2004 for MT): items are resampled jointly, so the
//   CI is the percentile CI of the mean of d_i = steered_i − base_i (stats.h bootstrap_mean_ci, seeded).
// Binomial tail probabilities use the regularised incomplete beta of stats.h:
//   P(X ≤ k | n, ½) = I_{½}(n − k, k + 1) for k < n.
// Implemented in src/eval_harness/significance.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "routescope/stats.h"

namespace rs {

// P(X ≤ k) for X ~ Bin(n, ½); 0 for k < 0, 1 for k ≥ n.
double binomial_half_cdf(int64_t k, int64_t n);

// Two-sided exact binomial test of k1 vs k2 successes out of k1 + k2 at p = ½:
// min(1, 2·P(X ≤ min(k1, k2) | k1 + k2, ½)); 1 when k1 + k2 = 0.
double binomial_two_sided_p(int64_t k1, int64_t k2);

// The 2×2 table of paired correct/incorrect outcomes.
struct PairedCounts {
    int64_t n = 0;             // pairs
    int64_t both = 0;          // both correct
    int64_t base_only = 0;     // b: base correct, steered wrong
    int64_t steered_only = 0;  // c: base wrong, steered correct
    int64_t neither = 0;
};

// Counts from per-item outcomes (0 = wrong, nonzero = correct); the spans must be the same length.
PairedCounts paired_counts(std::span<const uint8_t> base, std::span<const uint8_t> steered);

// McNemar exact p-value (see above).
double mcnemar_exact_p(int64_t b, int64_t c);

// McNemar chi-square with continuity correction: χ² = (|b − c| − 1)² / (b + c) (taken as 0 when |b − c| ≤ 1),
// p = P(χ²₁ ≥ χ²) = erfc(√(χ²/2)); 1 when b + c = 0.
double mcnemar_chi2_p(int64_t b, int64_t c);

// Percentile CI of mean(steered − base) by resampling item pairs; nullopt for no items.
std::optional<ConfidenceInterval> paired_bootstrap_delta_ci(std::span<const uint8_t> base,
                                                            std::span<const uint8_t> steered,
                                                            const BootstrapOptions & opt);

// Stratified paired bootstrap for a macro average over groups (languages): each resample draws every
// group's pairs with replacement within the group and averages the group mean deltas with equal weight,
// matching the paper's unweighted "AVG" rows. Group g, resample r uses stream derive_seed(seed, r, g + 1).
// nullopt when there are no groups or a group is empty.
std::optional<ConfidenceInterval> stratified_bootstrap_delta_ci(std::span<const std::vector<uint8_t>> base,
                                                                std::span<const std::vector<uint8_t>> steered,
                                                                const BootstrapOptions & opt);

struct SignTest {
    int n_pos = 0;
    int n_neg = 0;
    int n_zero = 0;  // dropped from the test
    double p = 1.0;  // two-sided exact
};

// Sign test on per-group deltas; |delta| ≤ zero_tol counts as zero.
SignTest sign_test(std::span<const double> deltas, double zero_tol = 1e-12);

}  // namespace rs
