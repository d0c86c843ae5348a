// `routescope sweep`: the intervention search of Bandarkar et al. 2025 (Section 5.4) as a grid over target
// layer ranges × expert-selection threshold τ × method × λ, tuned on a dev split and reported once on a
// held-out test split, so no test item ever influences the choice.
//
// Expert sets come from an `experts` output (analysis.h): for each τ the set of a layer is {e : Δ_e > τ}
// (Eq. 3 threshold) with Δ the file's "delta" (or "deltas"[LANG] with delta_of), restricted to the range.
// A configuration whose sets are empty in every layer of its range is skipped (and listed as such).
// Items of every language are split by in_dev_split (eval_tasks.h) on their parallel key, so a parallel
// item is in the same split in every language. Score on dev: the unweighted mean accuracy over the
// non-pivot languages (the paper's "non-en AVG"; all languages when only the pivot is evaluated); the best
// configuration is the first with the highest score.
//
// Output directory:
//   sweep.json          settings (model sha256, task, grid, split) — a resumed sweep must match them
//   dev/base/, dev/<config>/   eval directories (results.csv, details.jsonl, summary.csv; steer.json)
//   sweep.csv           name,layers,tau,method,lambda,n_experts,dev_n,dev_score,dev_delta,status
//   test/base/, test/best/     the held-out evaluation of the base model and the chosen configuration
//   best_steer.json     the chosen spec (reusable with eval --steer / trace --steer)
//   compare.md, compare.csv    Table 2 of base vs best on the test split (eval_compare.h)
// Every evaluation is resumable item by item, so a killed sweep continues where it stopped.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "routescope/analysis.h"
#include "routescope/eval_compare.h"
#include "routescope/eval_tasks.h"

namespace rs {

struct SweepJob {
    std::string model;
    std::string task;
    std::vector<std::string> langs;  // empty: all the task's data offers
    EvalData data;
    int n_shot = 2;
    int64_t limit = -1;    // items per language before the split
    std::string experts;   // experts.json
    std::string delta_of;  // empty: "delta"; else the language of "deltas"
    std::vector<LayerRange> layer_ranges;
    std::vector<double> taus = {0.3};
    std::vector<std::string> methods = {"soft"};
    std::vector<double> lambdas = {0.5};  // soft only
    double dev_fraction = 0.3;
    uint64_t seed = 0;  // split and force jitter
    std::string pivot = "eng_Latn";
    std::vector<std::string> low_resource = {"ben_Beng", "swh_Latn", "tel_Telu"};
    std::string out;
    int max_new_tokens = 256;
    int n_threads = 0, n_batch = 2048, n_ctx = 8192, n_seq_max = 32, n_gpu_layers = 0;
    bool progress = true;
};

struct SweepConfig {
    std::string name;  // "L4-8_tau0.3_soft_l0.5"
    LayerRange layers;
    double tau = 0;
    std::string method;
    double lambda = 0;  // soft only
    int n_experts = 0;  // (layer, expert) pairs steered
    int64_t dev_n = 0;  // dev items scored
    double dev_score = 0;
    bool skipped = false;  // no experts in the range at this τ
};

struct SweepReport {
    std::vector<SweepConfig> configs;
    int best = -1;  // index into configs
    double base_dev_score = 0;
    int64_t n_dev_items = 0, n_test_items = 0;  // over all languages
    std::vector<ComparisonTable> test;          // base vs best on the test split
    double seconds = 0;
};

// Runs (or resumes) the sweep; rs::Error on bad input (empty grid, experts.json of another model, a split
// leaving dev or test empty, a directory holding a sweep with other settings).
SweepReport run_sweep(const SweepJob & job);

}  // namespace rs
