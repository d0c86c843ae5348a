// Statistics used by the metrics: a portable seeded RNG, percentile bootstrap, Pearson/Spearman with
// two-sided p-values (Student t via the regularised incomplete beta function).
//
// Everything here is deterministic and platform independent: SplitMix64 plus our own rejection-sampled
// uniform integer (no std::uniform_int_distribution, whose output differs between standard libraries).
// Limits: the incomplete beta is the Numerical Recipes continued fraction (3rd ed., §6.4), accurate to
// ~1e-12 relative for the parameter ranges used here (a, b ≤ 1e6); it is not a general special-function
// library.
// Implemented in src/metrics/stats.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace rs {

// ---------------------------------------------------------------------------------------------------
// RNG

// SplitMix64 (Steele, Lea, Flood 2014; reference: https://prng.di.unimi.it/splitmix64.c).
struct SplitMix64 {
    uint64_t state = 0;

    explicit SplitMix64(uint64_t seed) : state(seed) {}
    uint64_t next();
};

// The SplitMix64 output function applied to x (a bijective 64-bit mixer). Inline with next(): the
// consistency draws and the bootstrap call it hundreds of millions of times in a 10^6-token analysis, and
// an out-of-line call per draw cost them as much as the draw.
inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

inline uint64_t SplitMix64::next() {
    state += 0x9e3779b97f4a7c15ULL;
    return mix64(state);
}

// Seed for stream (a, b) of a base seed, e.g. (sequence index, layer): mix64(mix64(mix64(seed) ^ a) ^ b).
uint64_t derive_seed(uint64_t seed, uint64_t a, uint64_t b);

// Uniform integer in [0, n), n > 0; rejection sampling so that it is exactly uniform.
uint64_t uniform_below(SplitMix64 & rng, uint64_t n);

// uniform_below(rng, n) for a fixed n, the same draws and the same values, without division instructions:
// r mod n by Lemire, Kaser & Kurz 2019, "Faster remainder by direct computation", Theorem 1 with F = 128,
// N = 64 (c = ⌈2^128/n⌉, r mod n = ⌊((c·r) mod 2^128)·n / 2^128⌋, exact for every 64-bit r and n). Two 64-bit
// divisions per draw dominated the consistency draws and the bootstrap.
class UniformBelow {
  public:
    explicit UniformBelow(uint64_t n) : n_(n), c_(~(u128)0 / n + 1), threshold_((0 - n) % n) {}
    uint64_t mod(uint64_t r) const {
        const u128 low = c_ * r;  // mod 2^128
        const u128 t = (u128)(uint64_t)(low >> 64) * n_ + (((u128)(uint64_t)low * n_) >> 64);
        return (uint64_t)(t >> 64);
    }
    uint64_t operator()(SplitMix64 & rng) const {
        for (;;) {  // uniform_below's rejection of r < 2^64 mod n
            const uint64_t r = rng.next();
            if (r >= threshold_) return mod(r);
        }
    }

  private:
    __extension__ typedef unsigned __int128 u128;  // GCC/Clang 128-bit integer (__extension__: -Wpedantic)
    uint64_t n_;
    u128 c_;
    uint64_t threshold_;
};

// ---------------------------------------------------------------------------------------------------
// Bootstrap

struct BootstrapOptions {
    int n_resamples = 1000;
    double level = 0.95;  // two-sided coverage of the percentile interval
    uint64_t seed = 0x5eed;
};

struct ConfidenceInterval {
    double lo = 0.0;
    double hi = 0.0;
};

// Linear-interpolation quantile of sorted values (numpy's default "linear" method), q ∈ [0, 1].
double quantile_sorted(std::span<const double> sorted, double q);

// Percentile bootstrap CI of the mean of `values` (resampling values with replacement).
// Resample r draws from its own stream derive_seed(seed, r, 0), so the result does not depend on
// how resamples might be scheduled. Empty input ⇒ nullopt; one value ⇒ [v, v].
std::optional<ConfidenceInterval> bootstrap_mean_ci(std::span<const double> values,
                                                    const BootstrapOptions & opt);

// ---------------------------------------------------------------------------------------------------
// Distributions

// Regularised incomplete beta I_x(a, b), a, b > 0, x ∈ [0, 1].
double incomplete_beta(double a, double b, double x);

// Student t with df > 0 degrees of freedom: CDF P(T ≤ t) = 1 − ½ I_{df/(df+t²)}(df/2, ½) for t ≥ 0.
double student_t_cdf(double t, double df);

// Two-sided p-value P(|T| ≥ |t|) = I_{df/(df+t²)}(df/2, ½).
double student_t_two_sided_p(double t, double df);

// ---------------------------------------------------------------------------------------------------
// Correlation

struct Correlation {
    double r = 0.0;  // coefficient in [−1, 1]
    double p = 1.0;  // two-sided p-value, H0: no correlation (t = r·√((n−2)/(1−r²)), n−2 df)
    int64_t n = 0;
};

// Pearson r. Undefined (nullopt) when x, y differ in length, n < 3 or either has zero variance.
std::optional<Correlation> pearson(std::span<const double> x, std::span<const double> y);

// Spearman ρ: Pearson r of the ranks, ties get their average rank; p-value by the same t approximation
// (as scipy.stats.spearmanr). Undefined as for pearson (constant ranks ⇒ zero variance).
std::optional<Correlation> spearman(std::span<const double> x, std::span<const double> y);

// 1-based ranks with ties averaged ("fractional ranking"); e.g. {10, 20, 20, 30} → {1, 2.5, 2.5, 4}.
std::vector<double> average_ranks(std::span<const double> x);

}  // namespace rs
