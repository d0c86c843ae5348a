// The inference engine: one llama.cpp model + context with routescope's router tap installed as
// the eval callback (ggml_backend_sched_eval_callback). Records, per token and MoE layer, the
// pre-gating router logits z (gpt-oss: the biased logits) and the expert ids the model selected.
// It computes no metrics (docs/architecture.md, "Data flow"): the trace store turns z into p.
//
// Batching: many sequences per llama_decode, one seq_id each, kv_unified=true and n_ubatch=n_batch,
// so the columns the callback sees are the batch's tokens in batch order (notes, section D), and
// every token is an output so the last MoE layer keeps all columns. Models with recurrent or hybrid
// memory (Jamba, Qwen3-Next, LFM2-MoE, Granite-4 hybrids …) always split a batch per sequence
// (split_equal / split_seq), which regroups the columns: they are decoded one sequence per
// llama_decode. The tap refuses any batch whose columns arrive in more than one piece.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "routescope/chat_template.h"
#include "routescope/model.h"
#include "routescope/steer.h"

namespace rs {

struct EngineParams {
    int n_threads = 0;     // 0: all cores
    int n_batch = 1024;    // tokens per llama_decode
    int n_ctx = 0;         // KV cache size in tokens, 0: n_batch (generation keeps prompts + outputs of
                           // all running sequences)
    int n_seq_max = 64;    // sequences per llama_decode (≤ 256)
    int n_gpu_layers = 0;  // >0 offloads layers to a GPU backend when llama.cpp was built with one
    // llama.cpp RPC servers ("HOST:PORT", ggml's rpc-server) whose devices take the offloaded layers
    // (n_gpu_layers of them): a model spread over several machines, or non-host tensors in tests.
    std::vector<std::string> rpc_servers;
    // The tap refuses architectures that tests/arch_conformance_test.cpp does not cover (make-model
    // cannot generate them: gemma4, encoders, draft heads …) unless this is set.
    bool allow_unverified_arch = false;
    bool tap = true;  // install the router tap (false: plain decoding, for benchmarks and parity)
    // record(): stop each decode's graph once the last router is recorded (its outputs are never read;
    // router_tap.h). false runs the whole graph: the A/B baseline of benchmarks and tests.
    bool record_stops_early = true;
    // Host memory the caller will hold besides the engine (trace: one shard's records), for the memory
    // check made before loading (estimate_memory).
    int64_t host_extra_bytes = 0;
};

// Router record of one sequence. Layer slot l indexes ModelInfo::moe_layers.
struct RouterRecord {
    std::vector<int32_t> tokens;
    std::vector<float> logits;  // [n_tok, n_moe, n_expert] pre-gating logits as the router saw them
    std::vector<int16_t> topk;  // [n_tok, n_moe, top_k] selected expert ids, in the model's order
};

// Greedy generation (evaluation): the argmax token at every step, ties to the lowest id.
struct GenerateParams {
    int max_new_tokens = 256;
    std::vector<std::string> stops;  // generation ends once the text contains one of them
};

struct Generation {
    enum class Stop { eos, stop_string, length };
    std::string text;             // the generated text, including the stop string that ended it (if any)
    std::vector<int32_t> tokens;  // the generated tokens (an end-of-generation token is not included)
    int n_tokens = 0;             // tokens.size()
    Stop stop = Stop::length;
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
    // Sequences decoded together at most: 1 for recurrent/hybrid memory, else params().n_seq_max.
    int seqs_per_decode() const;

    // Tokenizes with the model's vocabulary (BOS added when the model wants it and add_special is set),
    // truncated to max_tokens.
    std::vector<int32_t> tokenize(const std::string & text, int max_tokens, bool add_special = true) const;

    // The chat template `choice` resolved for this model (routescope/chat_template.h): "none"; "auto"
    // (the GGUF's tokenizer.chat_template when it has one, else none); "gguf" (the GGUF's, an error
    // without one); or a llama.cpp built-in name (chatml, llama3, gpt-oss …). Throws rs::Error for a
    // name llama.cpp does not know or a template it cannot format.
    ChatFrame chat_frame(const std::string & choice) const;

    // `text` as the user message of `frame`: the template's text with special tokens parsed (BOS as the
    // model wants it), the text without; truncated inside the text so the whole is at most max_tokens
    // (an error if the template alone does not fit). With frame.none(), tokenize(text, max_tokens).
    ChatTokens tokenize_chat(const ChatFrame & frame, const std::string & text, int max_tokens) const;

    // Decodes the sequences (each ≤ n_batch tokens), packing as many per llama_decode as fit, and
    // returns their router records in input order. Requires params.tap.
    std::vector<RouterRecord> record(std::span<const std::vector<int32_t>> seqs);

    // Output logits of every sequence, packed the same way: rows [n_pos, n_vocab] for the token
    // positions listed in positions[s] (ascending), or for every token when `positions` is empty.
    // Steered by the current plan; record_routing also records (parity tests: asking for the router
    // nodes must not change the outputs).
    std::vector<std::vector<float>> output_logits(std::span<const std::vector<int32_t>> seqs,
                                                  std::span<const std::vector<int32_t>> positions = {},
                                                  bool record_routing = false);

    // Greedy generation from each prompt (continuous batching: up to n_seq_max sequences whose prompt +
    // max_new_tokens fit in n_ctx run together). Steered by the current plan. on_done, if given, is
    // called as each prompt finishes (in completion order); the results are returned in input order.
    // Throws rs::Error when a prompt cannot fit (prompt + max_new_tokens > n_ctx, prompt > n_batch).
    std::vector<Generation> generate(std::span<const std::vector<int32_t>> prompts, const GenerateParams & gp,
                                     const std::function<void(size_t, const Generation &)> & on_done = {});

    // Decodes only (same packing, every token an output, not recorded): the baseline of the overhead
    // benchmark. Like record(), returns when the backend has finished, so the two can be timed alike.
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

// Host memory a run needs, estimated from the GGUF alone (src/engine/memory_estimate.cpp): the Engine
// refuses to load a model whose run would not fit (unless RS_NO_MEMORY_CHECK is set).
struct MemoryEstimate {
    int64_t weights = 0;  // GGUF tensor bytes of the blocks left on the host
    int64_t kv = 0;       // KV cache of those blocks (f16, n_ctx cells)
    int64_t outputs = 0;  // llama.cpp's output buffer (n_vocab floats per output row)
    int64_t compute = 0;  // one ubatch's activations, the output logits included
    int64_t routing = 0;  // the tap's buffers and EngineParams::host_extra_bytes
    int64_t total() const;
};
MemoryEstimate estimate_memory(const std::string & model_path, const EngineParams & params);
int64_t available_memory();  // MemAvailable of /proc/meminfo (bytes); -1 when unknown
// Throws rs::Error naming the model, the estimate's parts and the option that shrinks the largest one
// (--gpu-layers, --ctx, --batch, --shard-seqs) when m.total() exceeds `available` (> 0).
void check_memory(const std::string & model_path, const MemoryEstimate & m, int64_t available);

}  // namespace rs
