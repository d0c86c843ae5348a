// The [n_lang × E] matrices of per-language expert values that Chen's, RISE's and the isolation scores
// take (private to src/metrics).
#pragma once

#include <cstddef>
#include <span>

#include "routescope/common.h"

namespace rs {

inline void check_language_matrix(std::span<const double> m, int n_lang, int n_expert) {
    RS_ASSERT(n_lang >= 1 && n_expert >= 1 && m.size() == (size_t)n_lang * (size_t)n_expert);
}

}  // namespace rs
