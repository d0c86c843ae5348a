// `routescope demo`: the main job on bundled inputs. Records the routing of the bundled trained model
// (models/tiny-polyglot-moe.gguf, issue #5) on FLoRes-200 devtest for a handful of languages, analyses it
// against English, selects the multilingual experts, prints the per-layer divergence table, writes the
// HTML report and says where every output is.
#include <filesystem>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "commands.h"
#include "routescope/analysis.h"
#include "routescope/common.h"
#include "routescope/datasets.h"
#include "routescope/file_io.h"
#include "routescope/record.h"
#include "routescope/report.h"
#include "routescope/trace.h"

namespace fs = std::filesystem;

namespace rs::cli {
namespace {

// The divergence table of `analyze`: layer rows × language columns (Div from the pivot, Eq. 2).
void print_divergence(const std::string & csv_path, const std::vector<std::string> & langs,
                      const std::string & pivot, int mid_first, int mid_last) {
    const auto rows = parse_csv(read_file(csv_path), csv_path);
    std::map<int, std::map<std::string, std::string>> table;  // layer -> lang -> div
    for (size_t i = 1; i < rows.size(); ++i)
        if (rows[i].size() >= 5) table[std::stoi(rows[i][3])][rows[i][2]] = rows[i][4];
    std::vector<std::string> cols;
    for (const auto & l : langs)
        if (l != pivot) cols.push_back(l);
    fmt::print(
        "\nDivergence of routing from {} per layer (entropy-normalised JS, mean over parallel sentences; "
        "Bandarkar et al. 2025, Eq. 2)\n",
        pivot);
    fmt::print("{:>6}", "layer");
    for (const auto & c : cols) fmt::print(" {:>9}", c.substr(0, 3));
    fmt::print("\n");
    for (const auto & [layer, by_lang] : table) {
        fmt::print("{:>6}", layer);
        for (const auto & c : cols) {
            const auto it = by_lang.find(c);
            fmt::print(" {:>9}", it == by_lang.end() || it->second.empty() ? "-" : it->second.substr(0, 6));
        }
        if (mid_first >= 0 && layer >= mid_first && layer <= mid_last) fmt::print("   <- middle");
        fmt::print("\n");
    }
}

}  // namespace

void add_demo(CLI::App & app) {
    auto * cmd = app.add_subcommand("demo", "Run the main job on the bundled model and data");
    struct Opts {
        std::string data = default_data_dir();
        std::string model = default_model();
        std::string out = "runs/demo";
        std::string langs = "eng_Latn,deu_Latn,fra_Latn,rus_Cyrl,zho_Hans,hin_Deva,swh_Latn,yor_Latn";
        int64_t limit = 200;
        double tau = 0.3;
        int threads = 0;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("--model,-m", o->model, "GGUF model (default: the bundled tiny-polyglot-moe)")
        ->capture_default_str();
    cmd->add_option(
           "--data", o->data,
           "the data directory (FLoRes-200 under flores200/; default: data/ shipped with routescope)")
        ->capture_default_str();
    cmd->add_option("--out,-o", o->out, "output directory")->capture_default_str();
    cmd->add_option("--langs", o->langs, "languages to record (the first is the pivot)")
        ->capture_default_str();
    cmd->add_option("--limit", o->limit, "FLoRes sentences per language")->capture_default_str();
    cmd->add_option("--tau", o->tau, "Δ threshold of the multilingual experts")->capture_default_str();
    cmd->add_option("--threads,-t", o->threads, "CPU threads (0: all)")->capture_default_str();
    cmd->callback([o] {
        if (!fs::is_regular_file(o->model))
            throw Error(
                fmt::format("model {} not found (the bundled model lives in models/ of the source tree; "
                            "give --model or set ROUTESCOPE_MODEL)",
                            o->model));
        fs::create_directories(o->out);
        const auto langs = split_list(o->langs);
        if (langs.size() < 2) throw Error("--langs needs a pivot and at least one other language");
        TraceJob job;
        job.model = o->model;
        job.corpus = "flores:" + (fs::path(o->data) / "flores200" / "devtest").string();
        job.langs = langs;
        job.limit = o->limit;
        job.out = (fs::path(o->out) / "trace").string();
        job.n_threads = o->threads;
        fs::remove_all(job.out);  // the demo always starts fresh
        const auto s = run_trace(job);
        const auto m = read_manifest(job.out);
        fmt::print(
            "demo: traced {} sequences ({} tokens) of {} in {:.1f} s ({:.0f} tok/s): {} MoE layers × {} "
            "experts, "
            "top-{}\n",
            s.n_sequences, s.n_tokens, fs::path(o->model).filename().string(), s.seconds,
            s.n_tokens / std::max(s.seconds, 1e-9), m.moe_layers.size(), m.n_expert, m.top_k);

        AnalyzeOptions ao;
        ao.traces = {job.out};
        ao.pivot = langs[0];
        ao.n_threads = o->threads;
        ao.out_dir = (fs::path(o->out) / "analysis").string();
        const auto r = run_analyze(ao);
        print_divergence(ao.out_dir + "/divergence.csv", langs, ao.pivot, r.middle_first, r.middle_last);

        ExpertsOptions eo;  // Δ of every language vs the pivot (Eq. 3): the report's expert figures
        eo.traces = {job.out};
        eo.multilingual = true;
        eo.pivot = langs[0];
        eo.tau = o->tau;
        eo.n_threads = o->threads;
        eo.out = (fs::path(ao.out_dir) / "experts.json").string();
        const auto e = run_experts(eo);
        fmt::print("\ndemo: {} multilingual experts (Δ > τ = {}) over {} layers\n", e.n_selected, o->tau,
                   e.n_layers);

        ReportOptions ro;
        ro.run_dirs = {o->out};
        ro.out = (fs::path(o->out) / "report.html").string();
        const auto rep = write_report(ro);
        print_report_summary(rep, ro.out);

        fmt::print("\ndemo: outputs\n");
        fmt::print("  trace     {}   (safetensors shards + manifest.json; `routescope trace-info {}`)\n",
                   job.out, job.out);
        fmt::print(
            "  analysis  {}   (divergence, entropy, consistency, pairwise, clusters, isolation, experts, "
            "summary.json)\n",
            ao.out_dir);
        fmt::print("  report    {}   (open in a browser; works offline)\n", ro.out);
    });
}

}  // namespace rs::cli
