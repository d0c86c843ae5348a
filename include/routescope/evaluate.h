// `routescope eval`: task prompts → engine (optionally steered) → results.csv, resumable item by item
// (docs/steering-and-evaluation.md; Bandarkar et al. 2025, Section 6).
//
// Scoring:
// - generation (MGSM): greedy decoding until a stop string of the prompt, an end-of-generation token or
//   max_new_tokens; the last number of the text before the stop string is compared with the gold number
//   (eval_extract.h, score_math).
// - multiple choice: log P(continuation | context) for " A", " B", ... and the argmax (ties to the first).
//   Tokens as in the LM Evaluation Harness: whole = tok(context + continuation), ctx = tok(context), the
//   continuation is whole[len(ctx):] and is scored after whole[:len(ctx)]. When every continuation is one
//   token after the same ctx (the usual " A" case) the context is decoded once for all options.
//
// Output directory (one model and one steering spec; several tasks may share it):
//   eval.json       model (path, sha256, arch), steering plan (null when unsteered), per task its shots and
//                   max_new_tokens; a later run into the same directory must match it (rs::Error otherwise)
//   results.csv     one row per finished item, appended and flushed (eval_results.h): the resume record
//   details.jsonl   per item what the score came from: the generated text and why it stopped, or the
//                   per-option log-likelihoods; appended; a re-run item may appear twice (the last counts)
//   summary.csv     accuracy per task and language with a bootstrap CI, rewritten at the end of a run
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "routescope/engine.h"
#include "routescope/eval_prompt.h"
#include "routescope/eval_results.h"
#include "routescope/eval_tasks.h"

namespace rs {

struct EvalJob {
    std::string model;
    std::string task;                // mgsm | mmlu-med | belebele (eval_tasks.h)
    std::vector<std::string> langs;  // empty: every language the task's data offers
    EvalData data;
    int n_shot = 2;      // MGSM exemplars
    int64_t limit = -1;  // evaluate the first N items of each language; < 0: all
    std::string steer;   // steering spec (steer.h); empty: none
    std::string out;
    int max_new_tokens = 256;
    // Each prompt as the user message of this chat template (Engine::chat_frame). none by default, as
    // lm-evaluation-harness without --apply_chat_template.
    std::string chat_template = "none";
    int n_threads = 0;
    int n_batch = 2048;
    int n_ctx = 8192;
    int n_seq_max = 32;
    int n_gpu_layers = 0;
    std::vector<std::string> rpc_servers;  // llama.cpp rpc-server endpoints (EngineParams::rpc_servers)
    bool allow_unverified_arch = false;    // EngineParams::allow_unverified_arch
    bool progress = true;
    int64_t stop_after = -1;  // testing aid: stop (as if killed) after N newly finished items
};

struct EvalCounts {
    int64_t n_items = 0;    // selected
    int64_t n_skipped = 0;  // already in results.csv
    int64_t n_done = 0;     // evaluated by this run
    int64_t n_tokens = 0;   // tokens decoded (prompts and generated)
    double seconds = 0.0;
    bool stopped = false;  // stop_after was reached
};

struct EvalReport {
    EvalCounts counts;
    std::vector<SummaryRow> summary;  // every task and language in results.csv
};

// Runs the job; rs::Error on bad input (unknown task or language, missing data files, a spec for another
// model, an output directory of another model or spec).
EvalReport run_eval(const EvalJob & job);

struct EvalLoopOptions {
    int max_new_tokens = 256;
    bool steered = false;  // the `steered` column of the rows written
    bool progress = true;
    std::string label = "eval";
    int64_t stop_after = -1;
    ChatFrame chat;  // the prompts' chat template (none: plain text)
};

// The evaluation loop, shared by eval and sweep: scores `prompts` (all of `task`) with the engine's current
// steering, appending to out_dir/results.csv and details.jsonl and skipping item ids already in results.csv
// for (task, lang, steered).
EvalCounts evaluate_prompts(Engine & engine, EvalTask task, std::span<const EvalPrompt> prompts,
                            const std::string & out_dir, const EvalLoopOptions & opt);

// Accuracy per task and language of out_dir/results.csv (rows of one steered value), written to
// out_dir/summary.csv and returned.
std::vector<SummaryRow> write_eval_summary(const std::string & out_dir);

}  // namespace rs
