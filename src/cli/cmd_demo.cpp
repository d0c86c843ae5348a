// `routescope demo`: the main job on bundled inputs. Until the trained model of issue #5 ships, it
// generates a tiny random-weight OLMoE-style model (said loudly: its routing has no language
// structure) and records FLoRes-200 devtest for a handful of languages.
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "commands.h"
#include "routescope/make_model.h"
#include "routescope/record.h"
#include "routescope/trace.h"

namespace fs = std::filesystem;

namespace rs::cli {

void add_demo(CLI::App & app) {
    auto * cmd = app.add_subcommand("demo", "Run the main job on the bundled model and data");
    struct Opts {
        std::string data = default_data_dir();
        std::string out = "runs/demo";
        std::string langs = "eng_Latn,deu_Latn,fra_Latn,rus_Cyrl,zho_Hans,swh_Latn,yor_Latn,hin_Deva";
        int64_t limit = 100;
        int threads = 0;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("--data", o->data, "the shared data directory (FLoRes-200 under flores200/)")
        ->capture_default_str();
    cmd->add_option("--out,-o", o->out, "output directory")->capture_default_str();
    cmd->add_option("--langs", o->langs, "languages to record")->capture_default_str();
    cmd->add_option("--limit", o->limit, "FLoRes sentences per language")->capture_default_str();
    cmd->add_option("--threads,-t", o->threads, "CPU threads (0: all)")->capture_default_str();
    cmd->callback([o] {
        fs::create_directories(o->out);
        const std::string model = (fs::path(o->out) / "tiny-olmoe-random.gguf").string();
        MakeModelParams mp;
        mp.arch = "olmoe";
        mp.n_layer = 8;
        mp.n_expert = 16;
        mp.top_k = 2;
        make_model(mp, model);
        fmt::print(
            "demo: NOTE the model is a generated OLMoE-style model with RANDOM weights ({} layers, {} "
            "experts, "
            "top-{}); its routing shows plumbing, not language structure.\n",
            mp.n_layer, mp.n_expert, mp.top_k);

        TraceJob job;
        job.model = model;
        job.corpus = "flores:" + (fs::path(o->data) / "flores200" / "devtest").string();
        job.langs = split_list(o->langs);
        job.limit = o->limit;
        job.out = (fs::path(o->out) / "trace").string();
        job.n_threads = o->threads;
        fs::remove_all(job.out);  // the demo always starts fresh
        const auto s = run_trace(job);
        fmt::print("demo: traced {} sequences ({} tokens) in {:.1f} s ({:.0f} tok/s)\n", s.n_sequences,
                   s.n_tokens, s.seconds, s.n_tokens / std::max(s.seconds, 1e-9));
        const auto m = read_manifest(job.out);
        fmt::print("demo: trace {} — {} MoE layers × {} experts, languages {}\n", job.out,
                   m.moe_layers.size(), m.n_expert, fmt::join(m.langs, ","));
        fmt::print(
            "demo: inspect it with `routescope trace-info {}`; shards are safetensors (numpy/torch "
            "readable)\n",
            job.out);
    });
}

}  // namespace rs::cli
