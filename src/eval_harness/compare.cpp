// The base-vs-steered comparison table (routescope/eval_compare.h; Bandarkar et al. 2025, Table 2): pairing
// of two results.csv runs, per-language accuracy, Δ, paired bootstrap CI and McNemar p, the unweighted
// non-pivot and low-resource averages with a stratified bootstrap CI and a sign test, and the Markdown/CSV
// rendering.
//
// Limits: languages and item ids are compared as exact strings (use the same FLoRes codes and ids in both
// runs); everything is deterministic for a given bootstrap seed.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "routescope/common.h"
#include "routescope/eval_compare.h"
#include "routescope/file_io.h"

namespace fs = std::filesystem;

namespace rs {
namespace {

// lang -> item id -> outcome, for one task; the last row of an item wins.
using Outcomes = std::map<std::string, std::map<std::string, uint8_t>>;

Outcomes collect(std::span<const ResultRow> rows, const std::string & task) {
    Outcomes out;
    for (const ResultRow & r : rows)
        if (r.task == task) out[r.lang][r.item_id] = r.correct ? 1 : 0;
    return out;
}

// Joins one language's two runs on item id: the paired outcome vectors and the count of unpaired ids.
void pair_items(const std::map<std::string, uint8_t> & base, const std::map<std::string, uint8_t> & steered,
                std::vector<uint8_t> & b, std::vector<uint8_t> & s, int64_t & n_unpaired) {
    n_unpaired = 0;
    for (const auto & [id, x] : base) {
        const auto it = steered.find(id);
        if (it == steered.end()) {
            ++n_unpaired;
            continue;
        }
        b.push_back(x);
        s.push_back(it->second);
    }
    for (const auto & [id, x] : steered)
        if (!base.count(id)) ++n_unpaired;
}

double mean01(const std::vector<uint8_t> & v) {
    if (v.empty()) return 0.0;
    int64_t k = 0;
    for (const uint8_t x : v) k += x != 0;
    return (double)k / (double)v.size();
}

// Unweighted average over the selected languages, with the stratified bootstrap CI and the sign test.
AverageComparison average(const std::string & label, const std::vector<LangComparison> & langs,
                          const std::vector<size_t> & sel, const std::vector<std::vector<uint8_t>> & base,
                          const std::vector<std::vector<uint8_t>> & steered, const BootstrapOptions & opt) {
    AverageComparison a;
    a.label = label;
    a.n_langs = (int)sel.size();
    std::vector<std::vector<uint8_t>> b, s;
    std::vector<double> deltas;
    for (const size_t i : sel) {
        a.base += langs[i].base;
        a.steered += langs[i].steered;
        deltas.push_back(langs[i].delta);
        b.push_back(base[i]);
        s.push_back(steered[i]);
    }
    if (!sel.empty()) {
        a.base /= (double)sel.size();
        a.steered /= (double)sel.size();
        a.delta = a.steered - a.base;
        if (const auto ci = stratified_bootstrap_delta_ci(b, s, opt)) a.delta_ci = *ci;
    }
    a.sign = sign_test(deltas);
    return a;
}

std::string percent(double x) {
    return fmt::format("{:.1f}%", 100.0 * x);
}

// Δ in percentage points, paper style: "+1.6", "-0.4", "0.0".
std::string points(double x) {
    const double v = 100.0 * x;
    if (std::fabs(v) < 0.05) return "0.0";
    return fmt::format("{:+.1f}", v);
}

std::string p_value(double p) {
    return p < 0.001 ? "<0.001" : fmt::format("{:.3f}", p);
}

}  // namespace

ComparisonTable compare_runs(std::span<const ResultRow> base_rows, std::span<const ResultRow> steered_rows,
                             const std::string & task, const CompareOptions & opt) {
    const Outcomes base = collect(base_rows, task), steered = collect(steered_rows, task);
    std::vector<std::string> langs;
    for (const auto & [lang, items] : base) langs.push_back(lang);
    for (const auto & [lang, items] : steered)
        if (!base.count(lang)) langs.push_back(lang);
    // Pivot first, then by code (the paper lists en first).
    std::sort(langs.begin(), langs.end(), [&](const std::string & x, const std::string & y) {
        return std::make_pair(x != opt.pivot, x) < std::make_pair(y != opt.pivot, y);
    });

    ComparisonTable t;
    t.task = task;
    t.ci_level = opt.bootstrap.level;
    std::vector<std::vector<uint8_t>> b_all, s_all;
    static const std::map<std::string, uint8_t> kNone;
    int64_t n_paired = 0;
    for (const std::string & lang : langs) {
        LangComparison c;
        c.lang = lang;
        c.pivot = lang == opt.pivot;
        c.low_resource =
            std::find(opt.low_resource.begin(), opt.low_resource.end(), lang) != opt.low_resource.end();
        const auto bi = base.find(lang), si = steered.find(lang);
        std::vector<uint8_t> b, s;
        pair_items(bi == base.end() ? kNone : bi->second, si == steered.end() ? kNone : si->second, b, s,
                   c.n_unpaired);
        c.n = (int64_t)b.size();
        n_paired += c.n;
        c.base = mean01(b);
        c.steered = mean01(s);
        c.delta = c.steered - c.base;
        c.counts = paired_counts(b, s);
        c.p_mcnemar = mcnemar_exact_p(c.counts.base_only, c.counts.steered_only);
        c.p_mcnemar_chi2 = mcnemar_chi2_p(c.counts.base_only, c.counts.steered_only);
        if (const auto ci = paired_bootstrap_delta_ci(b, s, opt.bootstrap)) c.delta_ci = *ci;
        t.langs.push_back(std::move(c));
        b_all.push_back(std::move(b));
        s_all.push_back(std::move(s));
    }
    if (n_paired == 0)
        throw Error(
            fmt::format("compare: the base and steered runs share no items for task '{}' (check the "
                        "task name and that both runs used the same item ids)",
                        task));

    std::vector<size_t> non_pivot, low;
    for (size_t i = 0; i < t.langs.size(); ++i) {
        if (t.langs[i].pivot || t.langs[i].n == 0) continue;
        non_pivot.push_back(i);
        if (t.langs[i].low_resource) low.push_back(i);
    }
    t.non_pivot = average("non-pivot AVG", t.langs, non_pivot, b_all, s_all, opt.bootstrap);
    t.low_resource = average("low-res AVG", t.langs, low, b_all, s_all, opt.bootstrap);
    return t;
}

std::string comparison_markdown(const ComparisonTable & t) {
    const int level = (int)std::lround(100.0 * t.ci_level);
    std::string s = fmt::format("**{}**\n\n", t.task);
    s += fmt::format("| Language | n | base | steered | Δ | {}% CI of Δ | p |\n", level);
    s += "|---|---:|---:|---:|---:|:---:|---:|\n";
    for (const LangComparison & c : t.langs) {
        s += fmt::format("| {}{} | {} | {} | {} | {} | [{}, {}] | {} |\n", c.lang, c.low_resource ? "*" : "",
                         c.n, percent(c.base), percent(c.steered), points(c.delta), points(c.delta_ci.lo),
                         points(c.delta_ci.hi), p_value(c.p_mcnemar));
    }
    for (const AverageComparison * a : {&t.non_pivot, &t.low_resource}) {
        if (a->n_langs == 0) {  // no such language in the runs: nothing to average
            s += fmt::format("| {} | 0 langs | – | – | – | – | – |\n", a->label);
            continue;
        }
        s += fmt::format("| {} | {} lang{} | {} | {} | {} | [{}, {}] | {} |\n", a->label, a->n_langs,
                         a->n_langs == 1 ? "" : "s", percent(a->base), percent(a->steered), points(a->delta),
                         points(a->delta_ci.lo), points(a->delta_ci.hi), p_value(a->sign.p));
    }
    s += fmt::format(
        "\nΔ in points; * low-resource. Per language: paired bootstrap CI, McNemar exact p. AVG rows: "
        "unweighted "
        "means, stratified bootstrap CI, sign test p ({} up, {} down, {} tied over {} non-pivot "
        "languages).\n",
        t.non_pivot.sign.n_pos, t.non_pivot.sign.n_neg, t.non_pivot.sign.n_zero, t.non_pivot.n_langs);
    return s;
}

std::string comparison_csv(const ComparisonTable & t) {
    std::string s =
        "task,lang,n,n_unpaired,base,steered,delta,ci_lo,ci_hi,b,c,p_mcnemar,p_mcnemar_chi2,pivot,"
        "low_resource\n";
    for (const LangComparison & c : t.langs) {
        s += fmt::format("{},{},{},{},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{},{},{:.6g},{:.6g},{},{}\n", t.task,
                         c.lang, c.n, c.n_unpaired, c.base, c.steered, c.delta, c.delta_ci.lo, c.delta_ci.hi,
                         c.counts.base_only, c.counts.steered_only, c.p_mcnemar, c.p_mcnemar_chi2,
                         c.pivot ? 1 : 0, c.low_resource ? 1 : 0);
    }
    for (const AverageComparison * a : {&t.non_pivot, &t.low_resource}) {
        if (a->n_langs == 0) {  // empty cells rather than zeros that read as 0% accuracy
            s += fmt::format("{},{},0,0,,,,,,0,0,,,0,{}\n", t.task,
                             a == &t.non_pivot ? "AVG_non_pivot" : "AVG_low_resource",
                             a == &t.low_resource ? 1 : 0);
            continue;
        }
        s += fmt::format("{},{},{},0,{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{},{},{:.6g},,0,{}\n", t.task,
                         a == &t.non_pivot ? "AVG_non_pivot" : "AVG_low_resource", a->n_langs, a->base,
                         a->steered, a->delta, a->delta_ci.lo, a->delta_ci.hi, a->sign.n_pos, a->sign.n_neg,
                         a->sign.p, a == &t.low_resource ? 1 : 0);
    }
    return s;
}

std::vector<ComparisonTable> compare_result_dirs(const std::string & base_dir,
                                                 const std::string & steered_dir, const std::string & task,
                                                 const CompareOptions & opt, const std::string & out_dir) {
    if (opt.bootstrap.n_resamples < 1)
        throw Error(fmt::format("--resamples {} must be at least 1 (bootstrap resamples of the CIs)",
                                opt.bootstrap.n_resamples));
    if (!(opt.bootstrap.level > 0.0 && opt.bootstrap.level < 1.0))
        throw Error("compare: the CI level must be in (0, 1)");
    std::error_code ec;
    if (fs::equivalent(base_dir, steered_dir, ec))
        throw Error(fmt::format("{}: given as both the base and the steered run (compare two different runs)",
                                base_dir));
    // Table 2 pairs items of one model: runs of different models (eval.json's sha256) are refused.
    std::string sha[2];
    for (int i = 0; i < 2; ++i) {
        const std::string path = (fs::path(i ? steered_dir : base_dir) / "eval.json").string();
        if (!fs::exists(path, ec)) continue;
        try {
            const auto j = nlohmann::json::parse(read_file(path));
            if (j.is_object() && j.contains("model") && j["model"].is_object() &&
                j["model"].contains("sha256") && j["model"]["sha256"].is_string())
                sha[i] = j["model"]["sha256"].get<std::string>();
        } catch (const nlohmann::json::exception & e) {
            throw Error(fmt::format("{}: not readable JSON: {} (re-run `routescope eval`)", path,
                                    json_error_text(e.what())));
        }
    }
    if (!sha[0].empty() && !sha[1].empty() && sha[0] != sha[1])
        throw Error(
            fmt::format("{}: results of another model than {} (sha256 {}… vs {}…) (compare runs of one "
                        "model)",
                        steered_dir, base_dir, sha[1].substr(0, 12), sha[0].substr(0, 12)));
    std::vector<std::vector<ResultRow>> runs;
    for (const std::string & dir : {base_dir, steered_dir}) {
        const std::string path = (fs::path(dir) / "results.csv").string();
        runs.push_back(read_results(path));
        if (runs.back().empty())
            throw Error(fmt::format("compare: {} has no results (run `routescope eval` first)", path));
    }
    std::vector<std::string> tasks;  // in order of first appearance in the base run
    for (const ResultRow & r : runs[0])
        if ((task.empty() || r.task == task) &&
            std::find(tasks.begin(), tasks.end(), r.task) == tasks.end() &&
            std::any_of(runs[1].begin(), runs[1].end(),
                        [&](const ResultRow & q) { return q.task == r.task; }))
            tasks.push_back(r.task);
    if (tasks.empty())
        throw Error(task.empty() ? fmt::format("compare: {} and {} share no task", base_dir, steered_dir)
                                 : fmt::format("compare: task {} is not in both runs", task));
    std::vector<ComparisonTable> tables;
    std::string md, csv;
    for (const auto & t : tasks) {
        tables.push_back(compare_runs(runs[0], runs[1], t, opt));
        if (!md.empty()) md += '\n';
        md += comparison_markdown(tables.back());
        const std::string c = comparison_csv(tables.back());
        csv += csv.empty() ? c : c.substr(c.find('\n') + 1);  // one header
    }
    OutputFiles files;  // Table 2 as Markdown and CSV: both or neither
    files.add((fs::path(out_dir) / "compare.md").string(), md);
    files.add((fs::path(out_dir) / "compare.csv").string(), csv);
    files.commit();
    return tables;
}

}  // namespace rs
