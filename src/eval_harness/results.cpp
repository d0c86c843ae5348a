// results.csv and summary.csv for the evaluation harness (routescope/eval_results.h): an append-and-flush
// writer that survives interruption, a reader that ignores a half-written last line, the done-set for
// resuming, and per-language accuracy summaries with bootstrap CIs.
//
// Limits: a results file is read whole into memory (an eval has at most a few thousand rows per language);
// one writer per file (no locking between processes).
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "routescope/common.h"
#include "routescope/datasets.h"
#include "routescope/eval_results.h"
#include "routescope/file_io.h"

namespace fs = std::filesystem;

namespace rs {
namespace {

constexpr const char * kHeader = "task,lang,item_id,gold,pred,correct,steered";
constexpr size_t kNumFields = 7;

std::string read_all(const std::string & path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(fmt::format("results: cannot read {} (check its permissions)", path));
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// RFC-4180 quoting when needed; newlines become spaces so each record stays on one line.
std::string csv_field(std::string_view s) {
    std::string t(s);
    for (char & ch : t)
        if (ch == '\n' || ch == '\r') ch = ' ';
    if (t.find_first_of(",\"") == std::string::npos) return t;
    std::string q = "\"";
    for (const char ch : t) {
        if (ch == '"') q += '"';
        q += ch;
    }
    return q + "\"";
}

bool parse_flag(const std::string & s, const std::string & where, const char * name) {
    if (s == "0") return false;
    if (s == "1") return true;
    throw Error(fmt::format("{}: {} must be 0 or 1, got '{}'", where, name, s));
}

}  // namespace

const char * results_header() {
    return kHeader;
}

std::string format_result_row(const ResultRow & r) {
    return fmt::format("{},{},{},{},{},{},{}", csv_field(r.task), csv_field(r.lang), csv_field(r.item_id),
                       csv_field(r.gold), csv_field(r.pred), r.correct ? 1 : 0, r.steered ? 1 : 0);
}

ResultsWriter::ResultsWriter(const std::string & path) : path_(path) {
    std::error_code ec;
    bool need_header = true;
    if (fs::exists(path, ec)) {
        const std::string text = read_all(path);
        const size_t last_nl = text.rfind('\n');
        const size_t complete = last_nl == std::string::npos ? 0 : last_nl + 1;
        if (complete < text.size()) fs::resize_file(path, complete, ec);  // drop a half-written line
        if (ec) throw Error(fmt::format("results: cannot truncate {}: {}", path, ec.message()));
        if (complete > 0) {
            std::string first = text.substr(0, text.find('\n'));
            if (!first.empty() && first.back() == '\r') first.pop_back();
            if (first != kHeader)
                throw Error(
                    fmt::format("results: {} does not start with '{}' (not a results file?)", path, kHeader));
            need_header = false;
        }
    } else if (const fs::path dir = fs::path(path).parent_path(); !dir.empty()) {
        fs::create_directories(dir, ec);
    }
    file_ = std::fopen(path.c_str(), "ab");
    if (!file_) throw Error(fmt::format("results: cannot open {} for appending (check the directory)", path));
    if (need_header && (std::fprintf(file_, "%s\n", kHeader) < 0 || std::fflush(file_) != 0))
        throw Error(fmt::format("results: cannot write {} (disk full?)", path));
}

ResultsWriter::~ResultsWriter() {
    if (file_) std::fclose(file_);
}

void ResultsWriter::append(const ResultRow & row) {
    const std::string line = format_result_row(row) + "\n";
    if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
        throw Error(fmt::format("results: cannot write {} (disk full?)", path_));
}

std::vector<ResultRow> read_results(const std::string & path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) return {};
    const std::string text = read_all(path);
    std::vector<ResultRow> rows;
    size_t pos = 0, line_no = 0;
    while (pos < text.size()) {
        const size_t nl = text.find('\n', pos);
        if (nl == std::string::npos) break;  // unterminated last line: an interrupted write
        std::string_view line(text.data() + pos, nl - pos);
        pos = nl + 1;
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        const std::string where = fmt::format("results: {}:{}", path, line_no);
        if (line_no == 1) {
            if (line != kHeader) throw Error(fmt::format("{}: expected the header '{}'", where, kHeader));
            continue;
        }
        if (line.empty()) continue;
        const auto recs = parse_csv(line, fmt::format("{}:{}", path, line_no));
        if (recs.size() != 1 || recs[0].size() != kNumFields)
            throw Error(fmt::format("{}: expected {} fields", where, kNumFields));
        const auto & f = recs[0];
        rows.push_back({f[0], f[1], f[2], f[3], f[4], parse_flag(f[5], where, "correct"),
                        parse_flag(f[6], where, "steered")});
    }
    return rows;
}

std::set<std::string> done_item_ids(std::span<const ResultRow> rows, const std::string & task,
                                    const std::string & lang, bool steered) {
    std::set<std::string> done;
    for (const ResultRow & r : rows)
        if (r.task == task && r.lang == lang && r.steered == steered) done.insert(r.item_id);
    return done;
}

std::vector<SummaryRow> summarize_results(std::span<const ResultRow> rows, const BootstrapOptions & opt) {
    struct Group {
        std::string task, lang;
        std::map<std::string, double> outcome;  // item id -> 0/1, last row wins
    };
    std::vector<Group> groups;
    std::map<std::pair<std::string, std::string>, size_t> index;
    for (const ResultRow & r : rows) {
        if (r.steered != rows[0].steered)
            throw Error("results: rows mix base and steered runs; summarise each condition separately");
        auto [it, fresh] = index.try_emplace({r.task, r.lang}, groups.size());
        if (fresh) groups.push_back({r.task, r.lang, {}});
        groups[it->second].outcome[r.item_id] = r.correct ? 1.0 : 0.0;
    }
    std::vector<SummaryRow> out;
    for (const Group & g : groups) {
        std::vector<double> v;
        for (const auto & [id, x] : g.outcome) v.push_back(x);
        double sum = 0.0;
        for (const double x : v) sum += x;
        const auto ci = bootstrap_mean_ci(v, opt);
        RS_ASSERT(ci.has_value());  // every group has at least one row
        out.push_back({g.task, g.lang, (int64_t)v.size(), sum / (double)v.size(), ci->lo, ci->hi});
    }
    return out;
}

std::string format_summary(std::span<const SummaryRow> rows) {
    std::string s = "task,lang,n,accuracy,ci_lo,ci_hi\n";
    for (const SummaryRow & r : rows)
        s += fmt::format("{},{},{},{:.6f},{:.6f},{:.6f}\n", csv_field(r.task), csv_field(r.lang), r.n,
                         r.accuracy, r.ci_lo, r.ci_hi);
    return s;
}

void write_summary(const std::string & path, std::span<const SummaryRow> rows) {
    write_file_atomic(path, format_summary(rows));
}

}  // namespace rs
