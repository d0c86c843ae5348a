// Analysis of routing traces (rs_analysis): the `analyze` and `experts` commands as library calls.
// Streams trace shards one by one, summarises sequences with the metrics library (metrics.h) in parallel
// and writes tidy tables. No llama.cpp here; every formula lives in src/metrics.
//
// run_analyze writes into AnalyzeOptions::out_dir (each file atomically; "layer" is always the real block
// index manifest.moe_layers[slot]; an undefined value is an empty cell and is counted, never inf/NaN):
//   divergence.csv   model,trace,lang,layer,div,ci_lo,ci_hi,n_pairs,n_undefined
//                    Div(lang, l) from the pivot over parallel pairs (Eq. 2) with a bootstrap CI; the pivot's
//                    own row compares each pivot sequence with itself (0 wherever defined)
//   entropy.csv      model,lang,layer,entropy                    routing entropy (§4.4), languages pooled
//                                                                over traces
//   consistency.csv  model,lang,layer,consistency,n_seq,n_undefined   token routing consistency (§4.4)
//   pairwise.csv     model,layer,lang_a,lang_b,div,n_pairs,n_undefined  language × language mean D_H-JS over
//                    parallel groups (domain, group) both languages have, in whichever traces they were
//                    recorded (all ordered pairs, diagonal included)
//   correlation.csv  layer,pearson_r,pearson_p,spearman_rho,spearman_p,n   Div(lang, l) vs --scores (only
//                    with a scores file: TSV with a header line, columns lang TAB score)
//   isolation.csv    model,layer,lang_a,lang_b,isolation          routing isolation (ours; Jaccard of the
//                    top-k expert sets, language_experts.h), a < b
//   experts_rise.csv model,layer,expert,overlap,top_lang,specificity   per expert: RISE's overlap
//                    O = 1/(1 + σ/μ) and the language with the highest specificity S = f_L(e)/mean_L' f_L'(e)
//                    (rise.h, the authors' definitions; specificity empty with one language)
//   domains.csv      model,layer,domain_a,domain_b,div        unpaired D_H-JS of corpus-mean q between
//                    domains (all traces and languages pooled per domain), a < b
//   clusters.json    average-linkage clustering of languages by pairwise divergence: per layer and for the
//                    mean over the middle layers {langs, merges: [{a, b, distance, size}], leaf_order,
//                    filled: [[a, b], …]}; a cell without any defined pair (the two languages share no
//                    parallel group, or every pair is below the normaliser floor) takes the largest defined
//                    distance and is listed in "filled"
//   summary.json     model, traces, pivot, middle-layer range (automatic unless --middle), per language the
//                    mean divergence / entropy / consistency over the middle layers, undefined-pair counts,
//                    "options": {pooling, entropy, normaliser} (AnalyzeOptions; docs/metrics.md)
// Several traces of the same model may be analysed together. Pairing is by (domain, parallel group): a trace
// that lacks the pivot language is paired with the first trace (in command order) that has the pivot for
// that domain; every group must then have a pivot partner ("mismatched parallel groups" otherwise). A
// parallel sentence (domain, group, language) recorded in several traces counts once: the first trace (traces
// with the pivot first, then command order) provides it to every table except divergence.csv, whose rows are
// per trace (summary.json counts the others as n_duplicate_sequences). The same trace directory given twice
// is refused. Traces recorded with `trace --store topk` (top-k ids and their p only, trace.h): analyze writes
// what the ids give — consistency.csv, isolation.csv, experts_rise.csv and summary.json (consistency;
// "store": "topk", "not_computed": the files below) — and not divergence.csv, entropy.csv, pairwise.csv,
// clusters.json, domains.csv or correlation.csv, which need the full p_t (older copies of them in --out are
// removed; --scores is refused; the pivot need not be present) — unless pooling is "gate", which needs only
// the ids and their p and gives every table (pooling "softmax" given explicitly with such a trace is
// refused). run_experts needs only the ids and works
// unchanged. Memory with several traces: the q of every parallel sequence of all but the last trace read is
// kept (n_moe·E doubles each) so that later traces can pair with it. Determinism: byte-identical outputs for
// equal inputs and seed, whatever the thread count.
//
// run_experts (Bandarkar et al. 2025, §5.2, Eq. 3) writes a JSON file (the input of the steering tools):
//   {"model": {"arch", "name", "sha256", "n_layer", "moe_layers", "n_expert", "top_k"},
//    "method": "delta", "tau": τ, "target": SPEC, "baseline": SPEC, "layers": [block indices],
//    "n_seq": {"target": N1, "baseline": N2}            (sequences selected; multilingual: per language)
//    "sets": {name: {"<layer>": [expert ids ascending]}},   name "target" (Δ_e > τ), or with --multilingual
//                                                          "multilingual" (the union) and one per language
//    "delta": {"<layer>": [E floats]},                   Δ_e; with --multilingual the max over languages
//    "deltas": {lang: {"<layer>": [E floats]}},          --multilingual only
//    "overlaps": [{"a", "b", "n_a", "n_b", "n_intersection", "jaccard"}]   --multilingual only, all layers
//  }
// and a CSV (default: the JSON path with .csv): layer,expert,freq_target,freq_baseline,delta,selected,target
// (target = the set name: "target", or the language with --multilingual).
//
// With --method chen | rise | steermoe (experts_methods.cpp) the JSON has the same "model", "layers" and
// "sets" (so `steer` and training take them by name), plus "method", "source" (the authors' repository and
// file), "params" (every parameter, defaults the authors'), "n_seq" and "n_tok", and per method:
//   chen      sets "shared" and one per language (its exclusive experts); "shares": {lang: {"<layer>": [E]}}
//             after the per-language top-k mask; "coefficients": {"<layer>": {"<expert>": share of the first
//             language}} of the shared experts (the s_e of routing-guided steering). CSV (the
//             shared/exclusive table): layer,expert,lang,freq,share,shared,exclusive
//   rise      sets "selected" and "shallow" / "middle" / "deep"; "zones": {zone: [block indices]},
//             "budgets": {zone: n}, "experts": [{zone, layer, expert, score, specificity | overlap}].
//             CSV (the tripartite selection): zone,layer,expert,score,specificity,overlap,freq_target,
//             freq_mean
//   steermoe  sets "activate" and "deactivate"; "risk_difference": {"<layer>": [E]}, "n_pairs",
//             "n_dropped_by_cap". CSV: layer,expert,count_a,count_b,p_a,p_b,risk_difference,rank,set
// Every method reads only the top-k ids, so `--store topk` traces work.
//
// Sequence selectors (SPEC): comma-separated KEY=VALUE terms that must all hold; KEY is lang, domain or
// trace (the trace's position on the command line, 0-based); VALUE is a name, several names joined by '|',
// '*' (anything) or '!' + names (anything but). Examples: "lang=deu_Latn", "domain=gsm8k",
// "lang=eng_Latn,domain=flores", "lang=!eng_Latn", "lang=deu_Latn|fra_Latn", "*" (every sequence).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rs {

// Inclusive range of real block indices, parsed from "a:b" (or "a" for one layer).
struct LayerRange {
    int first = 0;
    int last = 0;
    bool contains(int layer) const { return layer >= first && layer <= last; }
};
LayerRange parse_layer_range(const std::string & s);  // throws rs::Error

struct SeqSelector {
    struct Term {
        std::string key;                  // lang | domain | trace
        bool negate = false;              // "!a|b": none of the names
        std::vector<std::string> values;  // empty: '*'
    };
    std::string text;  // as given
    std::vector<Term> terms;

    static SeqSelector parse(const std::string & spec);  // throws rs::Error naming the bad term
    bool matches(const std::string & lang, const std::string & domain, int trace_index) const;
};

struct AnalyzeOptions {
    std::vector<std::string> traces;
    std::string pivot = "eng_Latn";
    std::string scores;                // optional TSV lang<TAB>score with a header
    std::optional<LayerRange> middle;  // block indices; automatic when unset
    uint64_t seed = 0;                 // consistency draws and bootstrap
    int n_threads = 0;                 // ≤ 0: all cores
    int bootstrap_resamples = 1000;
    std::string out_dir;
    // What a sequence's q pools (metrics.h, Pooling): "softmax" (the paper's Eq. 1), "gate" (the authors'
    // code: top-k weights renormalised); empty = softmax, except that a --store topk trace then gives the
    // id tables only (an explicit "softmax" with such a trace is refused).
    std::string pooling;
    // The entropy of entropy.csv and summary.json: "token" = mean over tokens of H(p_t) (or H(g_t) with
    // gate pooling; the paper's §4.4 text), "pooled" = mean over sequences of H(q_i) (the authors' code,
    // analysis_helpers.py analyze_routing_entropy on the pooled q).
    std::string entropy = "token";
    // D_H-JS normaliser rule (divergence.h, HjsNormaliser): "undefined" (default) or "clamp" (authors').
    std::string normaliser = "undefined";
};

struct AnalyzeReport {
    int64_t n_sequences = 0, n_tokens = 0;
    int n_layers = 0, n_langs = 0;
    int middle_first = -1, middle_last = -1;  // block indices; −1 when no range could be found
    bool middle_auto = true;
    int64_t n_undefined_pairs = 0;
    bool topk_only = false;  // a --store topk trace: only the tables the top-k ids give were written
    double seconds = 0.0;
};

AnalyzeReport run_analyze(const AnalyzeOptions & opt);  // throws rs::Error on bad input

// A scores file (--scores): a header line, then lang TAB score per line; rs::Error naming the bad line.
std::map<std::string, double> read_scores(const std::string & path);

struct ExpertsOptions {
    std::vector<std::string> traces;
    std::string method = "delta";  // delta | chen | rise | steermoe
    // delta (Bandarkar et al. 2025)
    std::string target, baseline;  // SPECs (ignored with multilingual)
    bool multilingual = false;     // Δ of every non-pivot language vs the pivot
    std::string pivot = "eng_Latn";
    double tau = 0.3;
    // chen and rise: the languages considered (empty: every language of the traces)
    std::vector<std::string> langs;
    // chen (Chen et al. 2026): defaults of their interventions (scripts/run_intervention_*.sh)
    int chen_top = 15;
    double chen_threshold = 0.4;
    // rise (Zheng et al. 2026): defaults of rise/expert_selector.py; budget ≤ 0: E (their K for both models)
    std::string target_lang;
    int64_t rise_budget = 0;
    double rise_alpha = 10.0, rise_shallow_ratio = 0.375, rise_middle_ratio = 0.25,
           rise_shallow_budget = 0.35, rise_middle_budget = 0.25;
    // steermoe (Fayyaz et al. 2025): the two behaviours as SPECs over the same parallel groups
    std::string pair_a, pair_b;
    int n_activate = 0, n_deactivate = 0;
    bool reverse = false;
    std::optional<LayerRange> layers;  // block indices; all MoE layers when unset
    int n_threads = 0;
    std::string out;      // JSON
    std::string out_csv;  // empty: out with the extension replaced by .csv
};

struct ExpertsReport {
    int n_layers = 0;
    int64_t n_selected = 0;  // experts in the target (or multilingual) set, summed over layers
    int64_t n_seq_target = 0, n_seq_baseline = 0;
    double seconds = 0.0;
};

ExpertsReport run_experts(const ExpertsOptions & opt);  // throws rs::Error on bad input

}  // namespace rs
