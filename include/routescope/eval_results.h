// Evaluation results files: results.csv (one row per finished item, appended and flushed as the eval runs,
// so an interrupted eval resumes by skipping the item ids already there) and summary.csv (accuracy per task
// and language with a bootstrap CI).
//
// results.csv: header "task,lang,item_id,gold,pred,correct,steered"; correct and steered are 0/1; fields
// are RFC-4180 quoted when they hold ',' or '"'; newlines inside fields are written as spaces so that every
// record is one line. A last line without its '\n' is an interrupted write: readers ignore it and the writer
// cuts it off before appending. Any complete malformed line is an error naming FILE:LINE.
// summary.csv: header "task,lang,n,accuracy,ci_lo,ci_hi"; accuracy and CI as fractions in [0, 1], 6 decimals;
// the CI is the percentile bootstrap of stats.h (seeded, so summaries are reproducible).
// Implemented in src/eval_harness/results.cpp.
#pragma once

#include <cstdint>
#include <cstdio>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "routescope/stats.h"

namespace rs {

struct ResultRow {
    std::string task;     // "mgsm", "gmmlu_med", "belebele", ...
    std::string lang;     // FLoRes-200 code
    std::string item_id;  // McItem::id / MathItem::id
    std::string gold;     // normalised number or option letter
    std::string pred;     // idem; "" when nothing was extracted
    bool correct = false;
    bool steered = false;
};

// Appends rows to results.csv, flushing after each one. Not thread-safe: use one writer per file.
class ResultsWriter {
  public:
    // Opens (creating if needed) `path` for appending: writes the header to a new or empty file, checks it
    // on an existing one (rs::Error if it differs), and truncates an unterminated last line.
    explicit ResultsWriter(const std::string & path);
    ~ResultsWriter();
    ResultsWriter(const ResultsWriter &) = delete;
    ResultsWriter & operator=(const ResultsWriter &) = delete;

    // Writes one row and flushes it to the OS (fflush; not fsync).
    void append(const ResultRow & row);

  private:
    std::string path_;
    std::FILE * file_ = nullptr;
};

// The header line of results.csv, without the newline.
const char * results_header();

// One results.csv record (without the newline), quoted as described above.
std::string format_result_row(const ResultRow & row);

// Reads results.csv; a missing file gives no rows. Ignores an unterminated last line (see above).
std::vector<ResultRow> read_results(const std::string & path);

// Item ids already done for (task, lang, steered): what a resumed eval skips.
std::set<std::string> done_item_ids(std::span<const ResultRow> rows, const std::string & task,
                                    const std::string & lang, bool steered);

struct SummaryRow {
    std::string task;
    std::string lang;
    int64_t n = 0;
    double accuracy = 0.0;
    double ci_lo = 0.0;
    double ci_hi = 0.0;
};

// Accuracy per (task, lang) in order of first appearance, with the bootstrap CI of the mean of the 0/1
// outcomes. A later row for an item id already seen in its group replaces the earlier one (a re-run item).
// All rows must have the same `steered` value: rs::Error otherwise (summarise base and steered separately).
std::vector<SummaryRow> summarize_results(std::span<const ResultRow> rows, const BootstrapOptions & opt);

// summary.csv text (header + one line per row) and a writer for it (overwrites `path`).
std::string format_summary(std::span<const SummaryRow> rows);
void write_summary(const std::string & path, std::span<const SummaryRow> rows);

}  // namespace rs
