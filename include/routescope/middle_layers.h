// Automatic middle-layer range from the per-layer routing divergence curve.
//
// Bandarkar et al. 2025 mark by eye the "middle zone" where divergence from English stays low (Finding 1,
// §5.4 and Table 1, e.g. Qwen3-30B-A3B layers 8–35 one-indexed). This is our precise rule for it; users can
// override the range.
//
// Rule (curve d over the MoE layers in order, index 0..n−1; a layer may be undefined):
//   1. Interior I = layers 1..n−2 when exclude_ends and n ≥ 3, else all layers 0..n−1.
//      (The first/last layers are excluded as candidates because some models — Phi-3.5-MoE, Appendix A.2 —
//      route every language to the same few experts there, giving a spuriously low divergence.)
//   2. lo = min of d over the defined layers of I, l* = the smallest layer of I where d = lo;
//      hi = max of d over all defined layers (ends included).
//   3. Threshold θ = lo + α·(hi − lo), α ∈ [0, 1] (default 0.25).
//   4. The range [first, last] is the maximal contiguous run of layers of I that contains l* and in which
//      every layer is defined and has d ≤ θ (an undefined layer ends the run).
// A flat curve (hi = lo) gives the whole defined run of I around l*. No defined layer in I ⇒ nullopt.
// The curve normally is the mean over languages of Div(lang, l) (Eq. 2); see mean_over_languages.
// Implemented in src/metrics/divergence_structure.cpp.
#pragma once

#include <optional>
#include <span>
#include <vector>

namespace rs {

struct MiddleLayerOptions {
    double alpha = 0.25;       // fraction of the curve's range above its minimum that still counts as "low"
    bool exclude_ends = true;  // never pick the first or the last layer as the minimum or inside the range
};

struct MiddleLayerRange {
    int first = 0;   // first layer of the range (index into the curve)
    int last = 0;    // last layer of the range, inclusive
    int argmin = 0;  // l*: the layer with the lowest divergence in the interior
    double lo = 0.0, hi = 0.0;
    double threshold = 0.0;  // θ
};

std::optional<MiddleLayerRange> middle_layer_range(std::span<const std::optional<double>> curve,
                                                   const MiddleLayerOptions & opt = {});
std::optional<MiddleLayerRange> middle_layer_range(std::span<const double> curve,
                                                   const MiddleLayerOptions & opt = {});

// Per-layer mean over languages of div [n_lang × n_layer], over the languages defined at that layer;
// undefined where no language is.
std::vector<std::optional<double>> mean_over_languages(std::span<const std::optional<double>> div, int n_lang,
                                                       int n_layer);

}  // namespace rs
