// Evaluation tasks: which data files a task reads, which languages it offers, and its prompts per language
// (docs/steering-and-evaluation.md; Bandarkar et al. 2025, Tables 1-2). Pure: no model here.
//
//   mgsm       MGSM (Shi et al. 2023), DATA/mgsm/mgsm_<iso>.tsv, 11 languages; k-shot direct prompts in the
//              target language (eval_prompt.h), greedy generation, last number, exact match.
//   gmmlu_med  the Global-MMLU medical subset (7 MMLU subjects, the 420 sampled ids of
//              DATA/global_mmlu_medical_indices): English from DATA/mmlu_medical_en; any other language from
//              a user-supplied Global-MMLU CSV file (CohereForAI columns) GMMLU_DIR/<iso>.csv or
//              GMMLU_DIR/<flores>.csv, which also replaces the bundled English when present. 0-shot MC.
//   belebele   Belebele, BELEBELE_DIR/<flores>.jsonl (default DATA/belebele: eng_Latn, deu_Latn), either
//              layout (datasets.h). 0-shot MC with the passage.
// Accepted task names: mgsm; gmmlu_med, gmmlu-med, mmlu_med, mmlu-med; belebele.
// Implemented in src/eval_harness/tasks.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "routescope/eval_prompt.h"

namespace rs {

enum class EvalTask { mgsm, mgsm_direct, gmmlu_med, belebele };

struct EvalData {
    std::string data_dir;      // data/ of the repository (share/routescope/data installed)
    std::string gmmlu_dir;     // optional: Global-MMLU CSV files
    std::string belebele_dir;  // optional: Belebele jsonl files (default: data_dir/belebele)
};

// Parses a task name (see above); rs::Error listing the tasks otherwise.
EvalTask parse_eval_task(const std::string & name);

// The name written to results.csv: "mgsm", "gmmlu_med", "belebele".
std::string eval_task_name(EvalTask task);

// True for generation tasks (MGSM), false for multiple choice.
bool eval_task_generates(EvalTask task);

// The languages the task's data offers (FLoRes codes, sorted).
std::vector<std::string> eval_task_languages(EvalTask task, const EvalData & data);

// The prompts of one language (all evaluation items, in file order); rs::Error for a language the data does
// not have, naming what would be needed (e.g. the Global-MMLU file).
std::vector<EvalPrompt> eval_task_prompts(EvalTask task, const std::string & lang, const EvalData & data,
                                          int n_shot);

// The item id with its language part removed ("mgsm/deu_Latn/7" -> "mgsm/7"): parallel items of different
// languages share it (dev/test splits keep parallel items together).
std::string parallel_item_key(const std::string & item_id, const std::string & lang);

// Dev/test split for tuning (sweep): an item is in the dev split when the SplitMix64 mix of
// (seed, FNV-1a hash of its parallel key) falls below dev_fraction of the 64-bit range. Deterministic and
// platform independent; parallel items of all languages land in the same split.
bool in_dev_split(const std::string & parallel_key, double dev_fraction, uint64_t seed);

}  // namespace rs
