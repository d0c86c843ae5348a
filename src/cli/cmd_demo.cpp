// `routescope demo`: the main job on bundled inputs. Records the routing of the bundled trained model
// (models/tiny-polyglot-moe.gguf, issue #5) on FLoRes-200 devtest for a handful of languages, analyses it
// against English, selects the multilingual experts, prints the per-layer divergence table, writes the
// HTML report and says where every output is. With --finetune it also runs RISE's selection → finetune →
// held-out comparison (issue #13) and adds it to the report.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "commands.h"
#include "routescope/analysis.h"
#include "routescope/common.h"
#include "routescope/datasets.h"
#include "routescope/file_io.h"
#include "routescope/perplexity.h"
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

// Runs routescope-train (the libtorch commands) and waits; rs::Error when it cannot start or fails.
void run_trainer(std::vector<std::string> args) {
    const std::string trainer = trainer_path();
    args.insert(args.begin(), "routescope-train");
    std::vector<char *> argv;
    for (auto & a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawn(&pid, trainer.c_str(), nullptr, nullptr, argv.data(), environ) != 0)
        throw Error(
            fmt::format("demo --finetune: cannot run {} (this routescope was built without libtorch: "
                        "apt-get install libtorch-dev, then rebuild)",
                        trainer));
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        throw Error(fmt::format("demo --finetune: `routescope {}` failed (its message is above)", args[1]));
}

// The optional step (RISE, Zheng et al. 2026): select the target's subnetwork on a trace of FLoRes dev,
// finetune it and, as the control, a random subnetwork of the same size for one epoch on the target's dev
// lines, then compare held-out devtest bits per character of every demo language with the base model.
// Writes <out>/finetune/finetune_ppl.csv (the report's "RISE finetune" figure).
void finetune_step(const std::string & model, const std::string & data, const std::string & out,
                   std::vector<std::string> langs, const std::string & target, int64_t limit, int64_t lines,
                   int threads) {
    if (std::find(langs.begin(), langs.end(), target) == langs.end()) langs.push_back(target);
    const fs::path dir = fs::path(out) / "finetune";
    fs::remove_all(dir);
    fs::create_directories(dir);
    const std::string dev = "flores:" + (fs::path(data) / "flores200" / "dev").string();
    TraceJob sj;
    sj.model = model;
    sj.corpus = dev;
    sj.langs = langs;
    sj.limit = limit;
    sj.out = (dir / "select-trace").string();
    sj.n_threads = threads;
    sj.progress = false;
    run_trace(sj);
    ExpertsOptions eo;
    eo.traces = {sj.out};
    eo.method = "rise";
    eo.target_lang = target;
    eo.n_threads = threads;
    eo.out = (dir / "rise.json").string();
    const auto e = run_experts(eo);
    fmt::print(
        "\ndemo: RISE selected {} experts for {} on FLoRes dev; finetuning them and a random control\n",
        e.n_selected, target);
    std::string csv = "condition,seed,lang,bpc,nll,n_tokens\n";
    std::map<std::string, std::map<std::string, double>> bpc;  // condition -> lang -> bpc
    for (const std::string cond : {"base", "rise", "random"}) {
        std::string m = model;
        if (cond != "base") {
            m = (dir / (cond + ".gguf")).string();
            run_trainer({"finetune",
                         "--model",
                         model,
                         "--experts",
                         eo.out,
                         "--subnetwork",
                         cond == "rise" ? "selected" : "random",
                         "--corpus",
                         dev,
                         "--langs",
                         target,
                         "--limit",
                         std::to_string(lines),
                         "--epochs",
                         "1",
                         "--lr",
                         "1e-3",
                         "--seed",
                         "1",
                         "--threads",
                         std::to_string(threads),
                         "--out",
                         m});
        }
        PerplexityJob pj;
        pj.model = m;
        pj.corpus = "flores:" + (fs::path(data) / "flores200" / "devtest").string();
        pj.langs = langs;
        pj.limit = limit;
        pj.max_tokens = 1024;  // no sentence cut: bits per character stay defined
        pj.n_threads = threads;
        pj.progress = false;
        for (const auto & r : run_perplexity(pj)) {
            if (r.lang == "all") continue;
            bpc[cond][r.lang] = r.bpc;
            csv += fmt::format("{},{},{},{:.6f},{:.6f},{}\n", cond, cond == "base" ? "-" : "1", r.lang, r.bpc,
                               r.nll, r.n_tokens);
        }
    }
    write_file_atomic((dir / "finetune_ppl.csv").string(), csv);
    fmt::print(
        "\nHeld-out FLoRes devtest bits per character after one epoch on {} (Δ vs base; negative is "
        "better)\n",
        target);
    fmt::print("{:<10} {:>8} {:>10} {:>10}\n", "lang", "base", "Δ RISE", "Δ random");
    for (const auto & l : langs)
        fmt::print("{:<10} {:>8.4f} {:>+10.4f} {:>+10.4f}{}\n", l, bpc["base"][l],
                   bpc["rise"][l] - bpc["base"][l], bpc["random"][l] - bpc["base"][l],
                   l == target ? "   <- target" : "");
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
        bool finetune = false;
        std::string finetune_target = "swh_Latn";
        int64_t finetune_lines = 997;
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
    cmd->add_flag("--finetune", o->finetune,
                  "also run RISE: select the target's experts, finetune them and a random control (1 epoch), "
                  "compare held-out bits per character (a few minutes)");
    cmd->add_option("--finetune-target", o->finetune_target, "--finetune: the target language")
        ->capture_default_str();
    cmd->add_option("--finetune-lines", o->finetune_lines,
                    "--finetune: FLoRes dev lines of the target trained on")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
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

        if (o->finetune)
            finetune_step(o->model, o->data, o->out, langs, o->finetune_target, o->limit, o->finetune_lines,
                          o->threads);
        else
            fs::remove_all(fs::path(o->out) / "finetune");  // not a stale figure of an earlier run

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
        if (o->finetune)
            fmt::print("  finetune  {}/finetune   (rise.json, rise.gguf, random.gguf, finetune_ppl.csv)\n",
                       o->out);
        fmt::print("  report    {}   (open in a browser; works offline)\n", ro.out);
    });
}

}  // namespace rs::cli
