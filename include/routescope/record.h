// `routescope trace`: corpus → engine (router tap) → trace store, shard by shard, resumable.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rs {

struct TraceJob {
    std::string model;
    std::string corpus;              // spec, see corpus.h
    std::vector<std::string> langs;  // empty: all
    int64_t limit = -1;              // parallel groups (or sequences when unpaired)
    std::string out;
    bool resume = false;
    int max_tokens = 256;  // per sequence, after tokenization (BOS and chat template included)
    // Each sequence as the user message of this chat template (Engine::chat_frame: auto | none | gguf |
    // a llama.cpp built-in name); auto applies the GGUF's own, as the papers record passages.
    std::string chat_template = "auto";
    bool template_tokens = true;  // keep the template's tokens in the recording (false: the text's only)
    int n_batch = 1024;           // tokens per llama_decode
    int n_seq_max = 64;           // sequences per llama_decode
    int seqs_per_shard = 256;
    std::string probs_dtype = "f16";
    std::string store = "full";  // full | topk (TraceManifest::store: only the top-k ids and their p)
    bool logits = false;         // also store raw logits (f32)
    int n_threads = 0;
    int n_gpu_layers = 0;
    std::vector<std::string> rpc_servers;  // llama.cpp rpc-server endpoints (EngineParams::rpc_servers)
    bool allow_unverified_arch = false;    // EngineParams::allow_unverified_arch
    std::string steer;                     // steering spec (JSON); empty: none
    // --part I/N: record only the I-th of N contiguous ranges of whole shards (trace.h, "Parts");
    // a boundary must not split a parallel group. 1/1: the whole corpus.
    int part_index = 1, part_count = 1;
    bool progress = true;
    int64_t stop_after_shards = -1;  // testing aid: stop (as if killed) after writing this many shards
};

struct TraceSummary {
    int64_t n_sequences = 0, n_tokens = 0, shards_written = 0, shards_skipped = 0;
    double seconds = 0;
};

// Runs the job; throws rs::Error on bad input. Writes manifest.json first, then each shard atomically.
TraceSummary run_trace(const TraceJob & job);

// p = softmax(z) over all E logits, computed in double (docs/metrics.md, "Routing distribution").
void routing_softmax(const float * z, float * p, int n_expert);

}  // namespace rs
