// Evaluation prompts: MGSM k-shot prompts in the target language and 0-shot multiple-choice prompts (MMLU
// medical, Global-MMLU, Belebele) with their scored continuations.
//
// MGSM (Shi et al. 2023; Bandarkar et al. 2025 Table 1: "2-shot exact-match"):
// - Exemplars come from the SAME language file: the first n_shot items (indices 0 .. k−1) are reserved as
//   exemplars and excluded from evaluation, so every language is evaluated on the same 250 − k parallel
//   items (248 for the default k = 2; the paper's harness drew exemplars from MGSM's separate train split,
//   which data/ does not hold).
// - Format ("direct" answers, no chain of thought in the exemplars):
//       "<Q> <question>\n<A> <answer>\n\n" per exemplar, then "<Q> <question>\n<A>"
//   where <Q>/<A> are the localised labels of the LM Evaluation Harness MGSM tasks (mgsm/utils.py QUESTION;
//   answer labels are the plain "Answer:" word of each language). The exemplar answer is the bare gold
//   number (MGSM has only numeric answers), so the model is expected to continue with " <number>".
//   Unknown languages fall back to the English labels.
// - Generation stops at "\n\n<Q>", "\n<Q>" or "<Q>" (the model starting the next question).
// Multiple choice (Hendrycks et al. 2021 MMLU format, as in lm-eval):
//       ["The following are multiple choice questions (with answers) about <subject>.\n\n"]
//       [<passage>"\n\n"]<question>"\nA. <opt A>\nB. <opt B>\nC. <opt C>\nD. <opt D>\nAnswer:"
//   scored by the log-likelihood of the continuations " A", " B", " C", " D". The subject line is written
//   for MMLU items (non-empty subject, underscores as spaces) when subject_header is on; Belebele items
//   carry the passage instead.
// Implemented in src/eval_harness/prompt.cpp.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "routescope/datasets.h"

namespace rs {

struct MgsmLabels {
    std::string question;  // "Question:", "Frage:", "问题:", ...
    std::string answer;    // "Answer:", "Antwort:", "答案:", ...
};

// Labels for an MGSM language, given as FLoRes-200 ("deu_Latn") or MGSM ("de") code; English otherwise.
MgsmLabels mgsm_labels(const std::string & lang);

// The exemplar / evaluation split of one language file: items[0 .. n_shot) and items[n_shot ..).
struct MgsmSplit {
    std::vector<MathItem> exemplars;
    std::vector<MathItem> eval;
};

// Splits a language file; rs::Error when it has no more than n_shot items. n_shot ≥ 0.
MgsmSplit mgsm_split(std::span<const MathItem> items, int n_shot = 2);

// The k-shot prompt for `item` with the given exemplars (k = exemplars.size()). Asserts that `item` is not
// one of the exemplars (by id).
std::string mgsm_prompt(std::span<const MathItem> exemplars, const MathItem & item,
                        const MgsmLabels & labels);

// Stop strings for generation with these labels (longest first).
std::vector<std::string> mgsm_stop_strings(const MgsmLabels & labels);

struct McPromptOptions {
    bool subject_header = true;  // MMLU: "The following are multiple choice questions ... about <subject>."
    // Belebele as lm-evaluation-harness writes it (lm_eval/tasks/belebele/_default_template_yaml):
    //   "P: <passage>\nQ: <question, stripped>\nA: <opt A>\nB: …\nD: <opt D>\nAnswer：" (a full-width colon,
    //   U+FF1A, as in the harness), continuations " A" … " D".
    bool belebele_lm_eval = false;
};

// The 0-shot prompt of a multiple-choice item (2 to 26 options).
std::string mc_prompt(const McItem & item, const McPromptOptions & opt = {});

// The scored continuations " A", " B", ... for n options.
std::vector<std::string> mc_continuations(size_t n_options);

// ---------------------------------------------------------------------------------------------------
// Whole task lists: what the model-driven loop consumes, one entry per evaluated item.

struct EvalPrompt {
    std::string item_id;
    std::string lang;
    std::string prompt;
    std::string gold;                        // normalised number (MGSM) or option letter (multiple choice)
    std::vector<std::string> stops;          // generation: stop strings; empty for multiple choice
    std::vector<std::string> continuations;  // multiple choice: " A", " B", ...; empty for generation
};

// MGSM prompts of one language file: mgsm_split(items, n_shot), then one prompt per evaluation item, with
// the labels of that language (items[0].lang) and its stop strings. Items of mixed languages are a bug.
std::vector<EvalPrompt> mgsm_eval_prompts(std::span<const MathItem> items, int n_shot = 2);

// MGSM as lm-evaluation-harness's mgsm_direct (lm_eval/tasks/mgsm/direct/, version 4.0): 0-shot, every item
// evaluated, "<Q> <question>\n<A>" with the harness's direct labels (the question word of each language; the
// answer word "Antwort:", "Réponse :", "Respuesta:" for de/fr/es and "Answer:" for every other language),
// generation until "<Q>", "</s>" or "<|im_end|>".
MgsmLabels mgsm_direct_labels(const std::string & lang);
std::vector<EvalPrompt> mgsm_direct_eval_prompts(std::span<const MathItem> items);

// Multiple-choice prompts, one per item, gold as a letter.
std::vector<EvalPrompt> mc_eval_prompts(std::span<const McItem> items, const McPromptOptions & opt = {});

}  // namespace rs
