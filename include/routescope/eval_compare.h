// The base-vs-steered comparison table of an evaluation (Bandarkar et al. 2025, Table 2): per language the
// base and steered accuracy, Δ, the paired bootstrap CI of Δ and McNemar's exact p; then the unweighted
// averages over the non-pivot languages ("non-en AVG") and over a low-resource set ("low-res * AVG"), and a
// sign test on the per-language Δ across the non-pivot languages.
//
// Pairing: base and steered results.csv rows of one task are joined on (lang, item_id); items present in
// only one run are left out and counted (n_unpaired), so an unfinished run compares on the common items.
// A repeated item id within one run keeps its last row (as summarize_results).
// Rendering: Markdown in the paper's layout (percentages, Δ in points, low-resource languages starred)
// and CSV with fractions (6 decimals) for plotting. Statistics are in eval_significance.h.
// Implemented in src/eval_harness/compare.cpp.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "routescope/eval_results.h"
#include "routescope/eval_significance.h"
#include "routescope/stats.h"

namespace rs {

struct CompareOptions {
    std::string pivot = "eng_Latn";  // excluded from the averages and the sign test (the paper's "en")
    // The paper's starred languages (Table 2): Bengali, Swahili, Telugu.
    std::vector<std::string> low_resource = {"ben_Beng", "swh_Latn", "tel_Telu"};
    BootstrapOptions bootstrap;  // paired bootstrap of Δ (seeded)
};

struct LangComparison {
    std::string lang;
    int64_t n = 0;           // paired items
    int64_t n_unpaired = 0;  // items in only one of the two runs (left out)
    double base = 0.0;       // accuracy, fraction
    double steered = 0.0;
    double delta = 0.0;  // steered − base
    ConfidenceInterval delta_ci;
    PairedCounts counts;          // counts.base_only = b, counts.steered_only = c
    double p_mcnemar = 1.0;       // exact (McNemar 1947, binomial form)
    double p_mcnemar_chi2 = 1.0;  // chi-square with continuity correction, for reference
    bool pivot = false;
    bool low_resource = false;
};

struct AverageComparison {
    std::string label;  // "non-pivot AVG", "low-res AVG"
    int n_langs = 0;
    double base = 0.0;  // unweighted mean over the languages
    double steered = 0.0;
    double delta = 0.0;
    ConfidenceInterval delta_ci;  // stratified paired bootstrap (languages weighted equally)
    SignTest sign;                // sign test on the languages' Δ
};

struct ComparisonTable {
    std::string task;
    double ci_level = 0.95;             // coverage of the CIs (CompareOptions::bootstrap.level)
    std::vector<LangComparison> langs;  // pivot first, then by language code
    AverageComparison non_pivot;
    AverageComparison low_resource;
};

// Builds the table for `task` from the two runs' rows (rows of other tasks are ignored). Throws rs::Error
// when the runs share no items for the task. Languages present in only one run appear with n = 0 and are
// left out of the averages.
ComparisonTable compare_runs(std::span<const ResultRow> base, std::span<const ResultRow> steered,
                             const std::string & task, const CompareOptions & opt = {});

// Markdown: | Language | n | base | steered | Δ | 95% CI of Δ | p (McNemar) |, then the two AVG rows (p
// column: the sign test) and a one-line legend.
std::string comparison_markdown(const ComparisonTable & t);

// CSV: task,lang,n,n_unpaired,base,steered,delta,ci_lo,ci_hi,b,c,p_mcnemar,p_mcnemar_chi2,pivot,low_resource,
// then the AVG rows with lang "AVG_non_pivot" / "AVG_low_resource", n = number of languages, b/c = sign-test
// positives/negatives and p_mcnemar = the sign-test p.
std::string comparison_csv(const ComparisonTable & t);

// Compares the results.csv of two eval directories: one table per task both have (or only `task` when
// given), written to out_dir as compare.md and compare.csv (all tables, Markdown sections and CSV rows
// concatenated). rs::Error when a directory has no results or the runs share no task.
std::vector<ComparisonTable> compare_result_dirs(const std::string & base_dir,
                                                 const std::string & steered_dir, const std::string & task,
                                                 const CompareOptions & opt, const std::string & out_dir);

}  // namespace rs
