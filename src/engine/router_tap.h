// The router tap: routescope's eval callback (ggml_backend_sched_eval_callback), one object per
// llama_context (no global state). It records, per MoE layer, the pre-gating router logits and the
// expert ids the model selected, for every column (token) of the current batch.
//
// Which node holds the router logits is decided by structure (notes §A, §C.1): the MUL_MAT whose
// src[0] is `blk.<il>.ffn_gate_inp.weight`; when the layer has a router bias (gpt-oss), the ADD
// whose src[1] is `blk.<il>.ffn_gate_inp.bias` instead (that ADD is named ffn_moe_probs-<il>).
// The selected ids are the node `ffn_moe_topk-<il>`, [k, T] with row stride nb[1]: a VIEW of the
// argsort, or a GET_ROWS of the token → expert table in deepseek4's hash layers. A layer may build
// that node twice (grovemoe runs build_moe_ffn a second time for its adjugate experts, over the same
// logits): the first one after the layer's logits is the selection. Logits are read in their own
// callback: the next op (softmax) may run in place over them.
//
// Weights of offloaded layers reach the callback through scheduler copies named
// "<backend>#<tensor>#<n>" (e.g. "CUDA0#blk.3.ffn_gate_inp.weight#0"); the tensor name inside counts.
//
// Column → token: routescope decodes one ubatch per llama_decode (n_ubatch = n_batch, sequence-major
// batches), so each MoE layer's router node must arrive exactly once per decode. A second chunk means
// llama.cpp split or regrouped the batch (e.g. a hybrid memory's split_equal): the batch is then
// refused (error), never recorded or steered with a wrong column mapping.
//
// Two jobs, chosen per batch: recording asks for every router node of every MoE layer (every token is
// an output then, so the last layer keeps all columns). When only the routing is wanted (Engine::record:
// trace), the callback returns false once every MoE layer's nodes of the batch are collected: the
// scheduler then skips the rest of its split (ggml-backend.cpp, compute_splits), i.e. the last layer's
// expert FFN, the output norm and the full-vocabulary output matmul nobody reads (issue #11, item 3);
// later splits (offloaded layers) still run, on tensors that are all computed or unused. Steering alone
// (evaluation) asks only for the
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

// How a MoE layer turns its router logits into a selection, as its graph actually does it: read from
// the names and ops of build_moe_ffn's nodes while the scheduler asks about them (no node is
// requested for this, so it costs nothing). llama.cpp hard-codes the gating of several
// architectures regardless of the GGUF keys (dbrx, arctic, ernie4.5: softmax + renorm; llama4:
// sigmoid after selection on the logits), so the keys alone mislabel them.
struct ObservedGating {
    enum Probs : int8_t { unseen, softmax, sigmoid, softmax_weight, sqrt_softplus, other };
    bool seen = false;               // the graph has a `ffn_moe_*-<il>` node: this block's router runs
    Probs probs = unseen;            // the op that makes `ffn_moe_probs-<il>`
    bool renorm = false;             // `ffn_moe_weights_norm-<il>`: top-k weights divided by their sum
    bool sel_bias = false;           // `ffn_moe_probs_biased-<il>` is an ADD: a selection-only bias
    bool sigmoid_selection = false;  // ... is a sigmoid of the logits (grovemoe)
    bool groups = false;             // `ffn_moe_group_topk-<il>`: group-limited selection
    bool hash = false;               // `ffn_moe_topk-<il>` is a GET_ROWS: experts looked up per token
    // the selection sorts the router logits node itself (argsort(z): gpt-oss's softmax_weight, llama4), so
    // z is still intact when the top-k view is computed: recording asks for that one node per layer
    // (issue #11, item 1). Softmax and sigmoid gating run in place over z (ggml-alloc.c): two nodes.
    bool ids_beside_logits = false;
    bool topk_seen = false;  // the first `ffn_moe_topk-<il>` decides (grovemoe builds a second one)
};

struct RouterTap {
    // configuration (set once per model)
    int n_layer = 0, n_expert = 0, top_k = 0;
    std::vector<int> slot_of_layer;  // [n_layer] MoE slot of block il, or -1
    std::vector<bool> router_bias;   // [n_layer]
    int n_moe = 0;

    // per batch
    bool armed = false;                         // only decodes started by routescope are tapped
    bool recording = false;                     // record every router node (else: steering only)
    bool stop_when_recorded = false;            // skip the rest of the split once all are recorded
    int n_collected = 0;                        // router nodes collected in this batch
    int64_t n_tokens = 0;                       // tokens in the current batch
    std::vector<int32_t> out_cols;              // batch indices of the output tokens (pruned layers)
    std::vector<float> logits;                  // [n_tokens, n_moe, n_expert]
    std::vector<int16_t> topk;                  // [n_tokens, n_moe, top_k]
    std::vector<int64_t> col_logits, col_topk;  // [n_moe] columns received so far (ubatch cursor)
    std::vector<float> scratch;                 // device → host copies
    std::vector<uint64_t> col_key;              // [n_tokens] (position, token id): force jitter key
    std::vector<uint8_t> topk_pending;          // [n_moe] logits seen, selection not yet (grovemoe)
    std::vector<uint8_t> one_node;              // [n_moe] this batch reads z at the top-k view (see above)
    int n_expected = 0;                         // router nodes to collect in this batch
    std::string error;                          // first inconsistency seen in this batch (end_batch throws)

    // steering (optional): applied to the logits before gating; the steered logits are recorded
    const SteerPlan * steer = nullptr;

    // set `observe` for a decode to fill `observed` [n_moe] from the graph (see ObservedGating)
    bool observe = false;
    std::vector<ObservedGating> observed;

    void configure(int n_layer, int n_expert, int top_k, const std::vector<int> & moe_layers,
                   const std::vector<bool> & router_bias);
    // Starts a batch of n_tokens; col_key and out_cols are then filled by the caller. stop_when_recorded
    // (recording only): the batch's outputs are not wanted, the graph may stop after the last router.
    void begin_batch(int64_t n_tokens, bool recording, bool stop_when_recorded = false);
    // Throws rs::Error when the callback saw an inconsistency, or (recording) when a layer did not see
    // every token exactly once (token accounting).
    void end_batch();
};

// Block index of a weight named "blk.<il>.<suffix>", or of a scheduler copy of it named
// "<backend>#blk.<il>.<suffix>#<n>" (ggml-backend.cpp, split inputs of offloaded ops); -1 otherwise.
int weight_layer(const char * name, const char * suffix);

// The callback; user_data is a RouterTap*. With a steering plan it also writes the steered logits
// back (host memory directly, or ggml_backend_tensor_set), and where experts are forced it makes
// sure they are among the selected ids (selection biases or expert groups could otherwise veto them).
bool router_tap_eval(ggml_tensor * t, bool ask, void * user_data);

}  // namespace rs
