// One function per subcommand file: registers the subcommand and its callback on the app.
#pragma once

#include <CLI/CLI.hpp>

namespace rs {
struct ReportSummary;
}

namespace rs::cli {

void add_trace(CLI::App & app);
void add_trace_info(CLI::App & app);
void add_make_model(CLI::App & app);
void add_demo(CLI::App & app);
void add_analyze(CLI::App & app);
void add_experts(CLI::App & app);
void add_steer(CLI::App & app);
void add_eval(CLI::App & app);
void add_compare(CLI::App & app);
void add_sweep(CLI::App & app);
void add_train(CLI::App & app);
void add_finetune(CLI::App & app);
// routescope-train beside this executable (it runs `train` and `finetune`, the commands that need libtorch)
std::string trainer_path();
// one-line help of the commands routescope-train runs (shown by routescope's own --help too)
inline constexpr const char * kTrainHelp =
    "Train a small Qwen3-MoE (libtorch) on a corpus and export it as GGUF";
inline constexpr const char * kFinetuneHelp =
    "RISE: train only a selected expert subnetwork of a GGUF MoE on one language, written back in place";
void add_ppl(CLI::App & app);
void add_report(CLI::App & app);

// The data directory: $ROUTESCOPE_DATA, else <prefix>/share/routescope/data of an installed binary, else
// data/ of the source tree (routescope/resources.h).
std::string default_data_dir();

// The bundled model: $ROUTESCOPE_MODEL, else share/routescope/models/ of an installed binary, else
// models/tiny-polyglot-moe.gguf of the source tree.
std::string default_model();

// The one-paragraph summary of a written report (report and demo print it).
void print_report_summary(const ReportSummary & s, const std::string & out);

// Parses argv into `app` and runs the chosen subcommand; returns the exit code (bad input: one line on
// stderr, exit 1; help and version: exit 0).
int run_app(CLI::App & app, int argc, char ** argv);

// Comma-separated list → vector ("eng_Latn,deu_Latn").
std::vector<std::string> split_list(const std::string & s);

}  // namespace rs::cli
