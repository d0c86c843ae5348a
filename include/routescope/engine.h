// The inference engine: one llama.cpp model + context with routescope's router tap installed as
// the eval callback (ggml_backend_sched_eval_callback). Records, per token and MoE layer, the
// pre-gating router logits z (gpt-oss: the biased logits) and the expert ids the model selected.
// It computes no metrics (DESIGN.md, "Layout"): the trace store turns z into p.
//
// Batching: many sequences per llama_decode, one seq_id each, kv_unified=true and n_ubatch=n_batch,
// so the columns the callback sees are the batch's tokens in batch order (notes, section D), and
// every token is an output so the last MoE layer keeps all columns.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "routescope/model.h"
#include "routescope/steer.h"

namespace rs {

struct EngineParams {
    int n_threads = 0;     // 0: all cores
    int n_batch = 1024;    // tokens per llama_decode (also the context size)
    int n_seq_max = 64;    // sequences per llama_decode (≤ 256)
    int n_gpu_layers = 0;  // >0 offloads layers to a GPU backend when llama.cpp was built with one
    bool tap = true;       // install the router tap (false: plain decoding, for benchmarks and parity)
};

// Router record of one sequence. Layer slot l indexes ModelInfo::moe_layers.
struct RouterRecord {
    std::vector<int32_t> tokens;
    std::vector<float> logits;  // [n_tok, n_moe, n_expert] pre-gating logits as the router saw them
    std::vector<int16_t> topk;  // [n_tok, n_moe, top_k] selected expert ids, in the model's order
};

class Engine {
  public:
    // Loads the model; throws rs::Error with a one-line message (missing, corrupt, dense model).
    Engine(const std::string & model_path, const EngineParams & params);
    ~Engine();
    Engine(const Engine &) = delete;
    Engine & operator=(const Engine &) = delete;

    const ModelInfo & info() const;
    const EngineParams & params() const;

    // Tokenizes with the model's vocabulary (BOS added when the model wants it), truncated to max_tokens.
    std::vector<int32_t> tokenize(const std::string & text, int max_tokens) const;

    // Decodes the sequences (each ≤ n_batch tokens), packing as many per llama_decode as fit, and
    // returns their router records in input order. Requires params.tap.
    std::vector<RouterRecord> record(std::span<const std::vector<int32_t>> seqs);

    // Output logits [n_tok, n_vocab] of every token of every sequence, packed the same way (for
    // parity tests and the plain-decoding benchmark). With the tap installed it records too.
    std::vector<std::vector<float>> output_logits(std::span<const std::vector<int32_t>> seqs);

    // Decodes only (same packing, every token an output): the baseline of the overhead benchmark.
    void decode(std::span<const std::vector<int32_t>> seqs);

    int n_vocab() const;

    // Steers every following decode with `plan` (validated against this model); an empty plan turns
    // steering off. Requires params.tap.
    void set_steering(SteerPlan plan);

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

// Silences llama.cpp's log unless RS_VERBOSE is set; called by Engine and make_model.
void engine_backend_init();

}  // namespace rs
