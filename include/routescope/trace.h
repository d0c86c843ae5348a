// The trace store: a directory with manifest.json and safetensors shards (docs/trace-format.md).
//
// Shard k (shard-00000.safetensors, …) holds the corpus sequences [k·S, (k+1)·S) in corpus order,
// S = manifest.seqs_per_shard, so a shard's content does not depend on batching and an interrupted
// run resumes by skipping the shards that exist. Tensors of one shard (n_seq S, n_tok T, n_moe L,
// n_expert E, top_k K; numpy/torch read them with no routescope code):
//   seq_index  I64 [S]        position of the sequence in the corpus order
//   seq_group  I64 [S]        parallel-group id (FLoRes line index), -1 when unpaired
//   seq_lang   I32 [S]        index into manifest.langs
//   seq_domain I32 [S]        index into manifest.domains
//   seq_offset I64 [S+1]      token offsets: sequence s owns tokens [seq_offset[s], seq_offset[s+1])
//   tokens     I32 [T]        token ids (BOS included when the model adds one)
//   probs      F16|F32 [T,L,E] routing distribution p_t = softmax(z_t) over all E (biased) logits
//              (store "full", the default)
//   topk_probs F16|F32 [T,L,K] instead of probs with store "topk" (`trace --store topk`): p_t of the selected
//              experts only, in topk's order
//   topk       I16 [T,L,K]    expert ids the model actually selected, in the model's order
//   logits     F32 [T,L,E]    optional (--logits): the pre-gating logits z_t as seen by the router
// The safetensors __metadata__ holds {"format": "routescope-trace", "version": "1", "seq_ids": JSON}.
// Files are written to a temporary name and renamed, so a shard on disk is always complete.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace rs {

inline constexpr int kTraceVersion = 1;

// What a trace was recorded from and how; manifest.json is this struct as JSON.
struct TraceManifest {
    int version = kTraceVersion;
    std::string tool_version;
    // model
    std::string model_path;
    std::string model_sha256;
    std::string arch;             // general.architecture, e.g. "qwen3moe"
    std::string model_name;       // general.name when present
    int n_layer = 0;              // all blocks
    std::vector<int> moe_layers;  // block indices that have a router, ascending
    int n_expert = 0;
    int top_k = 0;
    std::string gating;  // softmax | softmax_topk | sigmoid | …, as the model's graph selects experts
    std::vector<int> hash_layers;  // blocks whose experts come from a token table (deepseek4)
    std::string p_meaning;         // "gate: …" (p is the model's gate) or "proxy: …" (model.h)
    // corpus
    std::string corpus;  // spec, e.g. "flores:/path/devtest"
    std::vector<std::string> langs;
    std::vector<std::string> domains;
    int64_t n_sequences = 0;  // sequences the run covers (after --limit)
    std::string
        corpus_sha256;  // SHA-256 of the corpus content (ids, languages, groups, texts); resume checks it
    int seqs_per_shard = 0;
    std::string probs_dtype = "f16";  // f16 | f32
    // full: probs [T, L, E]; topk: topk_probs [T, L, K] only (`trace --store topk`, ~E/K times smaller).
    // What a topk trace supports (only top-k ids needed): experts (Δ, sets), analyze's consistency,
    // isolation and experts_rise; not divergence, entropy, pairwise, clusters, domains or correlation,
    // which need the full p_t (analyze refuses them, see analysis.h).
    std::string store = "full";
    bool has_logits = false;
    std::map<int64_t, std::string>
        shard_sha256;  // SHA-256 of each shard file written; resume and reading verify it
    // SHA-256 of each shard's index part: its bytes up to the end of the last tensor that needs no
    // probabilities (length, header, seq_*, tokens, topk, and topk_probs in a topk store), which the writer
    // puts before probs and logits. Readers that need no probs (experts) read and verify that part alone.
    // Absent for shards written before it existed: those are read and verified whole.
    std::map<int64_t, std::string> shard_index_sha256;
    // XXH3-128 of each shard file and of its index part (file_io.h): what readers verify, at memory speed;
    // SHA-256 stays the shard's identity, checked on --resume and by trace merge. Absent for shards
    // written before they existed: those are verified by their SHA-256, as before.
    std::map<int64_t, std::string> shard_xxh3_128;
    std::map<int64_t, std::string> shard_index_xxh3_128;
    nlohmann::json options = nlohmann::json::object();  // batch size, max tokens, threads, steering spec …
};

nlohmann::json manifest_to_json(const TraceManifest & m);
TraceManifest manifest_from_json(const nlohmann::json & j);  // throws rs::Error on a bad/too new manifest

// Metadata of one sequence inside a shard.
struct TraceSeq {
    int64_t index = 0;  // position in corpus order
    int64_t group = -1;
    int32_t lang = 0;    // index into TraceManifest::langs
    int32_t domain = 0;  // index into TraceManifest::domains
    std::string id;
    int64_t tok_begin = 0;  // first token row in the shard
    int64_t n_tok = 0;
};

// One shard in memory. probs are always f32 here (converted from f16 on read).
struct TraceShard {
    int n_moe = 0, n_expert = 0, top_k = 0;
    std::vector<TraceSeq> seqs;
    std::vector<int32_t> tokens;    // [T]
    std::vector<float> probs;       // [T, n_moe, n_expert]; empty for a store "topk" trace
    std::vector<float> topk_probs;  // [T, n_moe, top_k] store "topk" only (write_shard derives it from probs)
    std::vector<int16_t> topk;      // [T, n_moe, top_k]
    std::vector<float> logits;      // [T, n_moe, n_expert] or empty

    int64_t n_tok() const { return (int64_t)tokens.size(); }
    // p of token row t (shard-relative) in MoE layer slot l: [n_expert]
    std::span<const float> p(int64_t t, int l) const {
        return {probs.data() + (t * n_moe + l) * n_expert, (size_t)n_expert};
    }
    std::span<const int16_t> ids(int64_t t, int l) const {
        return {topk.data() + (t * n_moe + l) * top_k, (size_t)top_k};
    }
    // p rows of sequence s in layer slot l are strided; copy them out as [n_tok, E].
    std::vector<float> seq_probs(size_t s, int l) const;
    std::vector<int16_t> seq_topk(size_t s, int l) const;
};

// ---------------------------------------------------------------------------------------------
// Writing

std::string shard_file_name(int64_t shard);  // "shard-00042.safetensors"

// Writes manifest.json atomically (temp file + rename).
void write_manifest(const std::string & dir, const TraceManifest & m);

// What write_shard wrote: the SHA-256 of the whole shard file and of its index part (TraceManifest).
struct ShardDigests {
    std::string file;        // SHA-256 of the file
    std::string index;       // SHA-256 of its index part
    std::string file_xxh3;   // XXH3-128 of the file
    std::string index_xxh3;  // XXH3-128 of its index part
};
// Writes one shard atomically and returns its digests. probs/logits are given in f32; probs are stored
// as m.probs_dtype.
ShardDigests write_shard(const std::string & dir, int64_t shard, const TraceManifest & m,
                         const TraceShard & s);
// Records a written shard's digests in the manifest.
void set_shard_digests(TraceManifest & m, int64_t shard, const ShardDigests & d);
// Removes every shard's digests (a fresh run, a merge's start).
void clear_shard_digests(TraceManifest & m);
// Copies the digests `from` holds for `shard` into `to` (resume, merge).
void copy_shard_digests(const TraceManifest & from, TraceManifest & to, int64_t shard);

// Prepares `dir` for a run. If it holds no trace, creates it. If it holds a trace of the same model
// and corpus (content hash included) and options and `resume` is set, returns the shard indices already
// complete: those whose bytes match their recorded checksum (m.shard_sha256 is set to them). Truncated,
// empty or replaced shards are not done. Writes m as manifest.json. Otherwise throws rs::Error (a
// different model's trace, or an existing trace without --resume).
std::vector<int64_t> prepare_trace_dir(const std::string & dir, TraceManifest & m, bool resume);

// ---------------------------------------------------------------------------------------------
// Reading

TraceManifest read_manifest(const std::string & dir);  // throws rs::Error with a hint
int64_t trace_n_shards(const TraceManifest & m);
// Reads and validates shard `shard` (checksum when the manifest has one, shapes, ids, offsets, finite
// probabilities); throws rs::Error naming the file.
TraceShard read_shard(const std::string & dir, const TraceManifest & m, int64_t shard);
// The same from the file's bytes (no checksum): the fuzz target's entry.
TraceShard parse_shard(const std::string & path, std::vector<uint8_t> bytes, const TraceManifest & m,
                       int64_t shard);

// An allocator whose value-less construction leaves the memory as it is (default-initialisation), so that
// vector::resize of a buffer that is overwritten right away does not write every byte twice.
template <class T>
struct DefaultInitAllocator : std::allocator<T> {
    template <class U>
    struct rebind {
        using other = DefaultInitAllocator<U>;
    };
    using std::allocator<T>::allocator;
    template <class U>
    void construct(U * p) noexcept {
        ::new (static_cast<void *>(p)) U;
    }
    template <class U, class... Args>
    void construct(U * p, Args &&... args) {
        ::new (static_cast<void *>(p)) U(std::forward<Args>(args)...);
    }
};

// A shard's stored bytes with typed views of its tensors, no conversion (analyze's and experts' fast path,
// src/trace/trace_raw.cpp). The whole file is read (one sequential pass, hashed as it is read when the
// manifest holds a digest of the shard: its XXH3-128, else its SHA-256, as read_shard verifies it). Without
// probs, a shard whose index-part digest the manifest holds is read only up to the end of that part and
// verified against it (`experts` reads the ids, a few percent of a full store's bytes); the probabilities
// are then neither read, checked nor handed out. Views point into `bytes`.
struct RawShard {
    int n_moe = 0, n_expert = 0, top_k = 0;
    int64_t n_tok = 0;
    std::vector<TraceSeq> seqs;            // id left empty
    const uint16_t * probs_f16 = nullptr;  // [T, n_moe, E] when the trace stores f16 and probs were read
    const float * probs_f32 = nullptr;     // [T, n_moe, E] when it stores f32 and probs were read
    const int16_t * topk = nullptr;        // [T, n_moe, K]
    // [T, n_moe, K] p of the selected experts, set (f16 or f32) for a store "topk" trace only
    const uint16_t * topk_probs_f16 = nullptr;
    const float * topk_probs_f32 = nullptr;
    // owns the data (8-byte aligned); grown without zeroing (the file's bytes are read over it at once)
    std::vector<uint64_t, DefaultInitAllocator<uint64_t>> bytes;
};
// reuse: a shard read before whose buffer is taken over (no new allocation, no page faults, when it is
// large enough); it is left empty.
RawShard read_shard_raw(const std::string & dir, const TraceManifest & m, int64_t shard,
                        bool with_probs = true, RawShard * reuse = nullptr);

// The shard indices present on disk (complete files), ascending.
std::vector<int64_t> list_shards(const std::string & dir);

// ---------------------------------------------------------------------------------------------
// Parts (src/trace/trace_merge.cpp): `trace --part I/N` records the I-th of N contiguous ranges of whole
// shards, so N machines record one corpus; its manifest is the whole run's plus options.part =
// {"index": I, "count": N}, and holds checksums for its own shards only. `trace merge` joins the N
// parts into the directory a single-machine run writes (same shards byte for byte, options.part dropped).

struct TracePart {
    int index = 1, count = 1;  // 1-based: part index of count
};
TracePart parse_trace_part(const std::string & spec);  // "I/N"; rs::Error otherwise
// The shards [first, last) of part p among n_shards: the same ranges on every machine.
std::pair<int64_t, int64_t> trace_part_shards(int64_t n_shards, const TracePart & p);
TracePart manifest_part(const TraceManifest & m);  // {1, 1} for a whole trace
// Checks that `dirs` are the complete parts 1..N of one run (same model and corpus hashes, same options)
// and writes the whole trace to `out` (must not hold a trace); returns its manifest. Throws rs::Error
// naming the part that does not belong or is incomplete.
TraceManifest merge_traces(const std::vector<std::string> & dirs, const std::string & out);

}  // namespace rs
