// Input views for the metrics library: one sequence × one MoE layer of a routing trace.
//
// A trace shard stores probs as [T, n_moe, E] and topk as [T, n_moe, K] (trace.h), so the rows of one
// layer are strided: row t of layer il starts at ((tok_begin + t)·n_moe + il)·E. RowsView describes such a
// [n_rows × width] matrix without copying; a dense [n_tok × E] array is the special case stride = width.
// Views never own memory. Limits: row counts are int64, widths int (E and K are small).
#pragma once

#include <cstdint>
#include <span>

#include "routescope/common.h"

namespace rs {

template <class T>
struct RowsView {
    std::span<const T> data;  // row t = data[t·stride, t·stride + width)
    int64_t n_rows = 0;
    int width = 0;
    int64_t stride = 0;  // elements between consecutive rows (>= width)

    std::span<const T> row(int64_t t) const {
        RS_ASSERT(t >= 0 && t < n_rows);
        return data.subspan((size_t)(t * stride), (size_t)width);
    }

    // true when every row lies inside data
    bool valid() const {
        if (n_rows < 0 || width < 0 || stride < width) return false;
        if (n_rows == 0) return true;
        return (int64_t)data.size() >= (n_rows - 1) * stride + width;
    }

    // [n_rows × width], rows back to back
    static RowsView dense(std::span<const T> d, int64_t n_rows, int width) {
        return RowsView{d, n_rows, width, width};
    }

    // Layer il of tokens [tok_begin, tok_begin + n_tok) of a [T, n_layer, width] array (a trace shard).
    static RowsView layer_slice(std::span<const T> d, int64_t tok_begin, int64_t n_tok, int n_layer, int il,
                                int width) {
        RS_ASSERT(il >= 0 && il < n_layer && tok_begin >= 0 && n_tok >= 0);
        const int64_t stride = (int64_t)n_layer * width;
        const size_t first = (size_t)(tok_begin * stride + (int64_t)il * width);
        RS_ASSERT(n_tok == 0 || first <= d.size());
        RowsView v{n_tok == 0 ? std::span<const T>{} : d.subspan(first), n_tok, width, stride};
        RS_ASSERT(v.valid());
        return v;
    }
};

using ProbRows = RowsView<float>;    // routing distributions p_t, [n_tok × E], each row sums to 1
using TopkRows = RowsView<int16_t>;  // selected expert ids, [n_tok × K]

}  // namespace rs
