// Evaluation data sets: MGSM, GSM8K, MMLU (medical subjects and the 420-item Global-MMLU sample), Belebele
// and AlpaCare MedInstruct, as flat item lists.
//
// Each reader takes the data set's directory or file as shipped in data/ (see
// data/MANIFEST.md) and throws rs::Error with a one-line message naming the file (and FILE:LINE for a
// malformed row) for a missing file, a malformed row, an unknown language or an out-of-range index. Nothing
// is skipped silently. Languages are FLoRes-200 codes (eng_Latn) everywhere; MGSM's own short codes (en, zh)
// are accepted as input. Ids are stable and built from row indices (0-based), so results can be joined across
// runs and languages.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rs {

// A multiple-choice item (MMLU, Global-MMLU, Belebele).
struct McItem {
    std::string id;  // "mmlu/test/virology/12" (CSV record), "belebele/eng_Latn/17/1" (passage line/question)
    std::string lang;     // "eng_Latn"
    std::string subject;  // MMLU subject ("virology"); empty for Belebele
    std::string passage;  // the reading passage (Belebele); empty for MMLU
    std::string question;
    std::vector<std::string> options;  // the answer options in file order (A, B, C, D)
    int gold = -1;                     // index of the correct option
};

// A math word problem with a numeric answer (MGSM, GSM8K).
struct MathItem {
    std::string id;    // "mgsm/eng_Latn/0", "gsm8k/test/0" (line index)
    std::string lang;  // "eng_Latn"
    std::string question;
    std::string answer;  // the final number, thousands separators removed: "114,200" -> "114200"
    std::string
        solution;  // GSM8K's worked solution without the "#### N" line (<<calc>> notes kept); MGSM: empty
};

// A free-form instruction (AlpaCare MedInstruct test set).
struct InstructionItem {
    std::string id;    // "alpacare/<id field>"
    std::string lang;  // "eng_Latn"
    std::string instruction;
};

// MGSM: DIR/mgsm_{en,bn,de,es,fr,ja,ru,sw,te,th,zh}.tsv, question TAB answer, no header, no quoting.
std::vector<std::string> mgsm_languages();  // the 11 languages as FLoRes-200 codes, sorted
std::vector<MathItem> load_mgsm(const std::string & dir, const std::string & lang);  // "en" or "eng_Latn"

// GSM8K: a jsonl file of {question, answer}; the answer ends with "#### N".
std::vector<MathItem> load_gsm8k(const std::string & file);

// MMLU: DIR/<subject>_<split>.csv (or DIR/<split>/<subject>_<split>.csv as in the original release), an
// RFC-4180 CSV without header: question, A, B, C, D, answer letter. Question and options are trimmed of
// surrounding whitespace (nutrition questions end with a newline in the file).
const std::vector<std::string> & mmlu_medical_subjects();  // the 7 medical subjects, sorted
std::vector<McItem> load_mmlu(const std::string & dir, const std::string & subject,
                              const std::string & split);

// Global-MMLU medical sample: the test-split rows of MMLU named by a JSON object {subject: [row index, ...]}
// (gmmlu_medical_samples_dict.json: 7 subjects x 60). Items come in subject order (sorted), then list order,
// with the MMLU ids. Caveat: the indices were drawn on the released MMLU; the staged professional_medicine
// test file is the 2020 version with 282 rows instead of 272, so its rows may differ from the ones
// Global-MMLU used.
std::vector<McItem> load_global_mmlu_medical(const std::string & mmlu_dir, const std::string & indices_file);

// The items of `items` that the indices file names (ids "mmlu/test/<subject>/<row>"), in the file's order;
// rs::Error when one is missing. Used for English MMLU and for Global-MMLU files alike.
std::vector<McItem> select_global_mmlu_sample(std::span<const McItem> items,
                                              const std::string & indices_file);

// Global-MMLU in the CohereForAI/Global-MMLU column layout, as a CSV file with a header (e.g. one language's
// test split exported from the dataset's parquet): sample_id, subject, question, option_a, option_b,
// option_c, option_d, answer (A-D); other columns are ignored. sample_id "<subject>/<split>/<row>" gives the
// MMLU row, so ids are "mmlu/<split>/<subject>/<row>" as for English MMLU (else rows are counted per subject
// in file order). Every subject is kept; items are labelled `lang`.
std::vector<McItem> load_global_mmlu_csv(const std::string & file, const std::string & lang);

// Belebele jsonl in either layout, detected per line:
// - the original release (facebook/belebele, one question per line): flores_passage, question, mc_answer1..4,
//   correct_answer_num (1-4), dialect (the FLoRes code); ids "belebele/<lang>/<line>";
// - the reshaped subset shipped in data/ (one passage per line): {text, items: [{question, answers:
//   [{text, correct}]}], metadata.extra.language}, flattened to one item per question, exactly one correct
//   answer; ids "belebele/<lang>/<line>/<question>".
std::vector<McItem> load_belebele(const std::string & file);

// AlpaCare MedInstruct: a jsonl file of {id, instruction, ...}.
std::vector<InstructionItem> load_alpacare(const std::string & file);

// An RFC-4180 CSV parser: comma separated, "quoted" fields may hold commas, newlines and "" for a quote;
// records end with LF or CRLF. `name` is used in errors (unterminated quote, a stray quote, text after a
// closing quote).
std::vector<std::vector<std::string>> parse_csv(std::string_view text, const std::string & name);

}  // namespace rs
