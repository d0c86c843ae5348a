// The router tap; see router_tap.h. Follows tools/imatrix's ask/collect pattern: answer `ask`
// cheaply (op first, then the name), copy off the device only when the buffer is not host memory.
#include "router_tap.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string_view>

#include <fmt/format.h>

#include "ggml-backend.h"
#include "routescope/common.h"

namespace rs {

void RouterTap::configure(int n_layer_, int n_expert_, int top_k_, const std::vector<int> & moe_layers,
                          const std::vector<bool> & router_bias_) {
    n_layer = n_layer_, n_expert = n_expert_, top_k = top_k_;
    n_moe = (int)moe_layers.size();
    slot_of_layer.assign(n_layer, -1);
    for (int s = 0; s < n_moe; ++s) slot_of_layer[moe_layers[s]] = s;
    router_bias = router_bias_;
    observed.assign(n_moe, {});
}

void RouterTap::begin_batch(int64_t n, bool recording_, bool stop_when_recorded_) {
    n_tokens = n;
    recording = recording_;
    stop_when_recorded = recording_ && stop_when_recorded_;
    n_collected = 0;
    col_key.assign((size_t)n, 0);
    out_cols.clear();
    logits.assign(recording ? (size_t)(n * n_moe * n_expert) : 0, 0.0f);
    topk.assign(recording ? (size_t)(n * n_moe * top_k) : 0, -1);
    col_logits.assign(n_moe, 0);
    col_topk.assign(n_moe, 0);
    topk_pending.assign(n_moe, 0);
    one_node.assign(n_moe, 0);
    n_expected = 0;
    for (int il = 0; il < n_layer; ++il) {
        const int s = slot_of_layer[il];
        if (s < 0) continue;
        // recording an unsteered layer whose selection sorts z itself: z is read at the top-k view
        one_node[s] = recording && observed[s].ids_beside_logits && !(steer && !steer->ops[il].empty());
        topk_pending[s] = one_node[s];
        n_expected += one_node[s] ? 1 : 2;
    }
    error.clear();
    armed = true;
}

void RouterTap::end_batch() {
    armed = false;
    if (!error.empty()) throw Error("router tap: " + error);
    if (!recording) return;
    for (int s = 0; s < n_moe; ++s)
        if (col_logits[s] != n_tokens || col_topk[s] != n_tokens)
            throw Error(
                fmt::format("router tap: MoE slot {} saw {} logit / {} top-k columns for {} tokens; "
                            "this model's graph is not supported",
                            s, col_logits[s], col_topk[s], n_tokens));
}

int weight_layer(const char * name, const char * suffix) {
    size_t len = std::strlen(name);
    if (const char * h = std::strchr(name, '#')) {  // "<backend>#<weight>#<n>": a scheduler copy
        const char * end = std::strchr(h + 1, '#');
        if (end == nullptr) return -1;
        name = h + 1;
        len = (size_t)(end - name);
    }
    int il = -1, n = 0;
    const size_t sl = std::strlen(suffix);
    if (std::sscanf(name, "blk.%d.%n", &il, &n) != 1 || il < 0 || (size_t)n + sl != len ||
        std::strncmp(name + n, suffix, sl) != 0)
        return -1;
    return il;
}

namespace {

int layer_of_weight(const ggml_tensor * w, const char * suffix) {
    return w == nullptr ? -1 : weight_layer(w->name, suffix);
}

// "<prefix><il>" → il, or -1.
int layer_of_name(const char * name, const char * prefix) {
    const size_t n = std::strlen(prefix);
    if (std::strncmp(name, prefix, n) != 0) return -1;
    int il = -1;
    return std::sscanf(name + n, "%d", &il) == 1 ? il : -1;
}

// Puts every forced expert into the selected ids, replacing unforced ids from the last slot up
// (the weakest selections). Returns whether the row changed. A no-op for plain softmax/sigmoid
// routers, where max(z)+ε already wins; it matters with selection biases or expert groups.
bool force_into_selection(int32_t * row, int k, const std::vector<int> & forced) {
    bool changed = false;
    for (int e : forced) {
        if (std::find(row, row + k, e) != row + k) continue;
        for (int s = k - 1; s >= 0; --s)
            if (std::find(forced.begin(), forced.end(), row[s]) == forced.end()) {
                row[s] = e;
                changed = true;
                break;
            }
    }
    return changed;
}

enum class TapNode { none, logits, topk };

// The router logits node of block il (the MUL_MAT with its ffn_gate_inp weight, or with a router bias
// the ADD of ffn_gate_inp.bias), by structure.
bool is_logits_node(const RouterTap & tap, const ggml_tensor * t, int il) {
    if (t == nullptr) return false;
    if (t->op == GGML_OP_MUL_MAT && !tap.router_bias[il])
        return layer_of_weight(t->src[0], "ffn_gate_inp.weight") == il;
    return t->op == GGML_OP_ADD && tap.router_bias[il] &&
           layer_of_weight(t->src[1], "ffn_gate_inp.bias") == il;
}

// The logits an argsort top-k view sorts, when it sorts z itself; nullptr otherwise.
ggml_tensor * sorted_logits(const RouterTap & tap, const ggml_tensor * topk, int il) {
    if (topk->op != GGML_OP_VIEW || topk->view_src == nullptr || topk->view_src->op != GGML_OP_ARGSORT)
        return nullptr;
    ggml_tensor * z = topk->view_src->src[0];
    return is_logits_node(tap, z, il) ? z : nullptr;
}

TapNode classify(const RouterTap & tap, const ggml_tensor * t, int & il) {
    il = -1;
    TapNode kind = TapNode::none;
    switch (t->op) {
        case GGML_OP_MUL_MAT:
            il = layer_of_weight(t->src[0], "ffn_gate_inp.weight");
            kind = TapNode::logits;
            break;
        case GGML_OP_ADD:
            il = layer_of_weight(t->src[1], "ffn_gate_inp.bias");
            kind = TapNode::logits;
            break;
        case GGML_OP_VIEW:      // argsort → top-k view
        case GGML_OP_GET_ROWS:  // deepseek4 hash layers: ids looked up per token
            il = layer_of_name(t->name, "ffn_moe_topk-");
            kind = TapNode::topk;
            break;
        default:
            return TapNode::none;
    }
    if (il < 0 || il >= tap.n_layer || tap.slot_of_layer[il] < 0) return TapNode::none;
    // With a router bias the biased ADD is the router's input, not the bare matmul.
    if (t->op == GGML_OP_MUL_MAT && tap.router_bias[il]) return TapNode::none;
    if (tap.recording)
        return kind == TapNode::logits && tap.one_node[tap.slot_of_layer[il]] ? TapNode::none : kind;
    // Steering only: the logits of steered blocks, the selected ids where experts are forced.
    if (tap.steer == nullptr || tap.steer->ops[il].empty()) return TapNode::none;
    if (kind == TapNode::topk && !tap.steer->has_force(il)) return TapNode::none;
    return kind;
}

// Batch token of column j of a router node with n_col columns: every token, or in a block pruned to
// the outputs (steering only) the j-th output token. Only valid for a whole-batch node (checked by
// whole_batch_node).
int64_t column_token(const RouterTap & tap, int64_t j, int64_t n_col) {
    return n_col == tap.n_tokens ? j : tap.out_cols[(size_t)j];
}

// A router node must cover the whole batch in one piece (see router_tap.h); otherwise llama.cpp
// regrouped the columns and the mapping to tokens is unknown. Records the error and returns false.
bool whole_batch_node(RouterTap & tap, const ggml_tensor * t, int il, int64_t seen) {
    const int64_t n_col = t->ne[1];
    const bool ok =
        seen == 0 && (n_col == tap.n_tokens || (!tap.recording && n_col == (int64_t)tap.out_cols.size()));
    if (!ok && tap.error.empty())
        tap.error = fmt::format(
            "block {} saw its router node {} in a piece of {} columns (batch of {} tokens, {} columns "
            "before): "
            "llama.cpp split or regrouped the batch, so columns cannot be mapped to tokens; this model's "
            "memory layout is not supported with several sequences per batch (use --batch-seqs 1)",
            il, t->name, n_col, tap.n_tokens, seen);
    return ok;
}

void collect_logits(RouterTap & tap, ggml_tensor * t, int il, int slot) {
    if (t->type != GGML_TYPE_F32 || !ggml_is_contiguous(t) || t->ne[0] != tap.n_expert) {
        if (tap.error.empty())
            tap.error = fmt::format("block {}: router logits {} are not a contiguous f32 [{}, T] tensor", il,
                                    t->name, tap.n_expert);
        return;
    }
    if (!whole_batch_node(tap, t, il, tap.col_logits[slot])) return;
    tap.topk_pending[slot] = 1;
    const int64_t n_col = t->ne[1];
    const bool host = ggml_backend_buffer_is_host(t->buffer);
    float * src = nullptr;
    if (host) {
        src = static_cast<float *>(t->data);
    } else {
        tap.scratch.resize((size_t)ggml_nelements(t));
        ggml_backend_tensor_get(t, tap.scratch.data(), 0, ggml_nbytes(t));
        src = tap.scratch.data();
    }
    if (tap.steer && !tap.steer->ops[il].empty()) {
        for (int64_t j = 0; j < n_col; ++j)
            steer_logits(std::span(src + j * tap.n_expert, (size_t)tap.n_expert), tap.steer->ops[il],
                         tap.steer->seed, il, tap.col_key[(size_t)column_token(tap, j, n_col)]);
        // consumers run after this callback returns, so they see the steered logits (notes §A)
        if (!host) ggml_backend_tensor_set(t, src, 0, ggml_nbytes(t));
    }
    if (tap.recording)  // column j of [E, T] is token j of the batch
        for (int64_t j = 0; j < n_col; ++j)
            std::memcpy(&tap.logits[(j * tap.n_moe + slot) * tap.n_expert], src + j * tap.n_expert,
                        sizeof(float) * tap.n_expert);
    tap.col_logits[slot] += n_col;
}

void collect_topk(RouterTap & tap, ggml_tensor * t, int il, int slot) {
    if (t->type != GGML_TYPE_I32 || t->ne[0] != tap.top_k || t->nb[0] != sizeof(int32_t)) {
        if (tap.error.empty())
            tap.error = fmt::format("block {}: selected ids {} are not an i32 [{}, T] tensor", il, t->name,
                                    tap.top_k);
        return;
    }
    if (!whole_batch_node(tap, t, il, tap.col_topk[slot])) return;
    const int64_t n_col = t->ne[1];
    const bool host = ggml_backend_buffer_is_host(t->buffer);
    // rows are strided (nb[1] = E·4, a view of the argsort): off the host, the span they cover is copied
    // in one ggml_backend_tensor_get (one round trip per node, not one per token) and, where experts
    // are forced, written back in one ggml_backend_tensor_set
    const size_t span = n_col > 0 ? (size_t)(n_col - 1) * t->nb[1] + sizeof(int32_t) * tap.top_k : 0;
    char * rows = static_cast<char *>(t->data);
    if (!host) {
        tap.scratch.resize((span + sizeof(float) - 1) / sizeof(float));
        rows = reinterpret_cast<char *>(tap.scratch.data());
        if (span) ggml_backend_tensor_get(t, rows, 0, span);
    }
    const std::vector<int> forced = tap.steer ? tap.steer->forced_experts(il) : std::vector<int>{};
    bool changed = false;
    for (int64_t j = 0; j < n_col; ++j) {
        auto * row = reinterpret_cast<int32_t *>(rows + j * t->nb[1]);
        if (!forced.empty()) changed |= force_into_selection(row, tap.top_k, forced);
        if (!tap.recording) continue;
        int16_t * dst = &tap.topk[(j * tap.n_moe + slot) * tap.top_k];
        for (int k = 0; k < tap.top_k; ++k) dst[k] = (int16_t)row[k];
    }
    // the span includes the argsort's other columns between rows: written back unchanged
    if (changed && !host) ggml_backend_tensor_set(t, rows, 0, span);
    tap.col_topk[slot] += n_col;
}

// Reads the gating of a layer from build_moe_ffn's node names (llama-graph.cpp), at ask time.
void observe_node(RouterTap & tap, const ggml_tensor * t) {
    static constexpr char kPrefix[] = "ffn_moe_";
    if (std::strncmp(t->name, kPrefix, sizeof kPrefix - 1) != 0) return;
    const char * what = t->name + sizeof kPrefix - 1;
    const char * dash = std::strrchr(what, '-');
    if (dash == nullptr) return;
    int il = -1, end = 0;  // exactly "<what>-<il>": not the views "<what>-<il> (reshaped)"
    if (std::sscanf(dash + 1, "%d%n", &il, &end) != 1 || dash[1 + end] != '\0' || il < 0 ||
        il >= tap.n_layer || tap.slot_of_layer[il] < 0)
        return;
    ObservedGating & g = tap.observed[(size_t)tap.slot_of_layer[il]];
    const std::string_view name(what, (size_t)(dash - what));
    g.seen = true;
    const bool sigmoid = t->op == GGML_OP_UNARY && ggml_get_unary_op(t) == GGML_UNARY_OP_SIGMOID;
    if (name == "probs") {
        if (t->op == GGML_OP_SOFT_MAX)
            g.probs = ObservedGating::softmax;
        else if (sigmoid)
            g.probs = ObservedGating::sigmoid;
        else if (t->op == GGML_OP_SQRT)
            g.probs = ObservedGating::sqrt_softplus;
        else if (t->op == GGML_OP_MUL_MAT || t->op == GGML_OP_ADD)  // probs = the logits themselves
            g.probs = ObservedGating::softmax_weight;
        else
            g.probs = ObservedGating::other;
    } else if (name == "probs_biased") {
        (t->op == GGML_OP_ADD ? g.sel_bias : g.sigmoid_selection) = true;
    } else if (name == "weights_norm") {
        g.renorm = true;
    } else if (name == "group_topk") {
        g.groups = true;
    } else if (name == "topk") {
        g.hash = g.hash || t->op == GGML_OP_GET_ROWS;
        if (!g.topk_seen) g.ids_beside_logits = sorted_logits(tap, t, il) != nullptr;
        g.topk_seen = true;
    }
}

}  // namespace

bool router_tap_eval(ggml_tensor * t, bool ask, void * user_data) {
    auto & tap = *static_cast<RouterTap *>(user_data);
    if (ask && tap.observe) observe_node(tap, t);
    int il = -1;
    const TapNode kind = tap.armed ? classify(tap, t, il) : TapNode::none;
    if (ask) {
        if (kind != TapNode::topk) return kind != TapNode::none;
        // only the first selection node after the layer's logits (a second build_moe_ffn over the same
        // logits, as in grovemoe, selects again from them: not asked, not recorded twice)
        const int slot = tap.slot_of_layer[il];
        const bool first = tap.topk_pending[slot] != 0;
        tap.topk_pending[slot] = 0;
        return first;
    }
    if (kind == TapNode::logits)
        collect_logits(tap, t, il, tap.slot_of_layer[il]);
    else if (kind == TapNode::topk) {
        const int slot = tap.slot_of_layer[il];
        if (tap.one_node[slot]) {  // z is the argsort's source, intact until the weights are gathered
            ggml_tensor * z = sorted_logits(tap, t, il);
            if (z == nullptr) {
                if (tap.error.empty())
                    tap.error = fmt::format("block {}: {} no longer sorts the router logits", il, t->name);
            } else {
                collect_logits(tap, z, il, slot);
                tap.topk_pending[slot] = 0;  // a second selection node is not this layer's selection
            }
        }
        collect_topk(tap, t, il, slot);
    } else {
        return true;
    }
    // false skips the rest of this split (notes §A): only once every router node of the batch is in,
    // and only when nobody reads the batch's outputs (see router_tap.h)
    return !(tap.stop_when_recorded && ++tap.n_collected == tap.n_expected && tap.error.empty());
}

}  // namespace rs
