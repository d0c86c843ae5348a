// Internals shared by the analysis sources (not installed): the validated set of traces, tidy-CSV
// building, atomic file writes. Limits: CSV fields are quoted (RFC 4180) only when they need it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "routescope/analysis.h"
#include "routescope/file_io.h"
#include "routescope/metrics.h"
#include "routescope/trace.h"

namespace rs::analysis {

// Traces of one model, checked to agree on the model (sha256, arch, layers, experts, top-k).
struct TraceSet {
    std::vector<std::string> dirs;         // as given on the command line
    std::vector<TraceManifest> manifests;  // one per dir
    std::string model;                     // label for the "model" column
    int n_moe = 0, n_expert = 0, top_k = 0;
    std::vector<int> moe_layers;  // block index of each MoE slot

    const TraceManifest & first() const { return manifests.front(); }
};

// Reads and validates the manifests; throws rs::Error for a missing trace, a trace without shards, or
// traces of different models.
TraceSet load_trace_set(const std::vector<std::string> & dirs);

// Slots whose block index lies in `range` (all slots when unset); throws when none does.
std::vector<int> select_slots(const TraceSet & ts, const std::optional<LayerRange> & range,
                              const char * what);

// Calls fn(shard index, shard) for every shard of a trace in order. With n_threads != 1 the next shard is
// read on a second thread while fn runs (reading and f16 decoding are serial in the trace store), so at
// most two shards are in memory.
void for_each_shard(const std::string & dir, const TraceManifest & m, int n_threads,
                    const std::function<void(int64_t, const TraceShard &)> & fn);

// The same over read_shard_raw (trace.h): the shard's bytes as stored, probs only when with_probs.
void for_each_raw_shard(const std::string & dir, const TraceManifest & m, int n_threads, bool with_probs,
                        const std::function<void(int64_t, const RawShard &)> & fn);

// `experts --method chen|rise|steermoe` (experts_methods.cpp): fills j (the experts.json of analysis.h
// beyond "model" and "layers") and rep, returns the method's CSV table. Throws rs::Error on bad input.
std::string run_experts_method(const ExpertsOptions & opt, const TraceSet & ts,
                               const std::vector<int> & slots, nlohmann::json & j, ExpertsReport & rep);

// Builds a CSV file in memory, row by row.
class Csv {
  public:
    explicit Csv(const std::vector<std::string> & header);
    Csv & field(const std::string & s);
    Csv & field(int64_t v);
    Csv & field(int v) { return field((int64_t)v); }
    Csv & field(double v);                 // "%.10g"; a non-finite value is written as an empty cell
    Csv & field(std::optional<double> v);  // empty cell when nullopt
    void end_row();
    const std::string & str() const { return buf_; }

  private:
    void sep();
    std::string buf_;
    bool row_start_ = true;
};

// "a,b,c" of the names
std::string join(const std::vector<std::string> & v, const std::string & sep = ",");

// Running totals of one language pair at one layer (pairwise.csv): D_H-JS summed over parallel groups.
struct PairCell {
    double sum = 0.0;
    int64_t n_defined = 0, n_undefined = 0;
    void add(std::optional<double> v) {
        if (v)
            sum += *v, ++n_defined;
        else
            ++n_undefined;
    }
    std::optional<double> mean() const {
        if (n_defined == 0) return std::nullopt;
        return sum / (double)n_defined;
    }
};

// Everything `analyze` accumulates while streaming the traces (analyze.cpp), read by the writers
// (analyze_output.cpp). Languages and domains are global over the traces, in order of first appearance.
struct AnalyzeState {
    TraceSet ts;
    AnalyzeOptions opt;
    std::vector<std::string> langs, domains;
    int pivot = -1;                                        // index into langs
    std::vector<std::vector<LayerAccumulator>> by_lang;    // [lang][slot]
    std::vector<std::vector<LayerAccumulator>> by_domain;  // [domain][slot]
    // D_H-JS(q_pivot ‖ q_lang) of each parallel pair, in group order: [trace][lang][slot][pair]
    std::vector<std::vector<std::vector<std::vector<std::optional<double>>>>> div_pairs;
    std::vector<PairCell> pairwise;  // [lang_a][lang_b][slot], symmetric
    std::vector<uint8_t> paired;     // [lang]: the language has a sequence in some parallel group
    bool topk_only =
        false;  // no q: a --store topk trace with softmax pooling (ids only, no divergence/entropy)
    bool any_topk_store = false;  // some trace was recorded with --store topk
    Pooling pooling = Pooling::softmax;
    bool pooled_entropy = false;  // --entropy pooled
    HjsNormaliser normaliser = HjsNormaliser::undefined;
    int64_t n_sequences = 0, n_tokens = 0;  // distinct sequences (a duplicate counts once)
    int64_t n_duplicates =
        0;  // parallel sequences (domain, group, language) already read from an earlier trace

    PairCell & cell(int a, int b, int slot) {
        return pairwise[((size_t)a * langs.size() + (size_t)b) * (size_t)ts.n_moe + (size_t)slot];
    }
    const PairCell & cell(int a, int b, int slot) const {
        return pairwise[((size_t)a * langs.size() + (size_t)b) * (size_t)ts.n_moe + (size_t)slot];
    }
};

// Streams every trace into the state (analyze.cpp).
AnalyzeState accumulate_traces(const AnalyzeOptions & opt);

// Writes every output file of `analyze` (analyze_output.cpp).
AnalyzeReport write_analysis(const AnalyzeState & st);

}  // namespace rs::analysis
