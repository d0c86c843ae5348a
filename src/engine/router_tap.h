// The router tap: routescope's eval callback (ggml_backend_sched_eval_callback), one object per
// llama_context (no global state). It records, per MoE layer, the pre-gating router logits and the
// expert ids the model selected, for every column (token) of the current batch.
//
// Which node holds the router logits is decided by structure (notes §A, §C.1): the MUL_MAT whose
// src[0] is `blk.<il>.ffn_gate_inp.weight`; when the layer has a router bias (gpt-oss), the ADD
// whose src[1] is `blk.<il>.ffn_gate_inp.bias` instead (that ADD is named ffn_moe_probs-<il>).
// The selected ids are the VIEW `ffn_moe_topk-<il>` of the argsort, [k, T] with row stride nb[1].
// Logits are read in their own callback: the next op (softmax) may run in place over them.
//
// Two jobs, chosen per batch: recording asks for every router node of every MoE layer (every token is
// an output then, so the last layer keeps all columns); steering alone (evaluation) asks only for the
// logits of the steered blocks and the top-k of blocks with forced experts, so an unsteered decode asks
// for nothing and runs at plain speed. Without recording the last block may be pruned to the output
// tokens (notes §B): its columns are then the batch's output tokens, in batch order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ggml.h"
#include "routescope/steer.h"

namespace rs {

struct RouterTap {
    // configuration (set once per model)
    int n_layer = 0, n_expert = 0, top_k = 0;
    std::vector<int> slot_of_layer;  // [n_layer] MoE slot of block il, or -1
    std::vector<bool> router_bias;   // [n_layer]
    int n_moe = 0;

    // per batch
    bool armed = false;                         // only decodes started by routescope are tapped
    bool recording = false;                     // record every router node (else: steering only)
    int64_t n_tokens = 0;                       // tokens in the current batch
    std::vector<int32_t> out_cols;              // batch indices of the output tokens (pruned layers)
    std::vector<float> logits;                  // [n_tokens, n_moe, n_expert]
    std::vector<int16_t> topk;                  // [n_tokens, n_moe, top_k]
    std::vector<int64_t> col_logits, col_topk;  // [n_moe] columns received so far (ubatch cursor)
    std::vector<float> scratch;                 // device → host copies
    std::vector<uint64_t> col_key;              // [n_tokens] (position, token id): force jitter key

    // steering (optional): applied to the logits before gating; the steered logits are recorded
    const SteerPlan * steer = nullptr;

    void configure(int n_layer, int n_expert, int top_k, const std::vector<int> & moe_layers,
                   const std::vector<bool> & router_bias);
    // Starts a batch of n_tokens; col_key and out_cols are then filled by the caller.
    void begin_batch(int64_t n_tokens, bool recording);
    // Recording: throws rs::Error when a layer did not see every token exactly once (token accounting).
    void end_batch();
};

// The callback; user_data is a RouterTap*. With a steering plan it also writes the steered logits
// back (host memory directly, or ggml_backend_tensor_set), and where experts are forced it makes
// sure they are among the selected ids (selection biases or expert groups could otherwise veto them).
bool router_tap_eval(ggml_tensor * t, bool ask, void * user_data);

}  // namespace rs
