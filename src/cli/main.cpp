// routescope: record, analyse and steer the expert routing of MoE language models.
// Every subcommand lives in its own cmd_*.cpp; errors from bad input are one line and exit 1.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "commands.h"
#include "routescope/common.h"

// `train` and `finetune` need libtorch (~290 shared libraries, ~0.4 s to load): they live in the sibling
// executable routescope-train, so every other command starts without it (issue #13). Returns only on failure.
static int exec_trainer(char ** argv) {
    const std::string trainer = rs::cli::trainer_path();
    argv[0] = const_cast<char *>("routescope-train");
    execv(trainer.c_str(), argv);
    std::fprintf(stderr,
                 "routescope: %s: cannot run the trainer (%s) (this routescope was built without libtorch: "
                 "apt-get install libtorch-dev, then rebuild)\n",
                 trainer.c_str(), std::strerror(errno));
    return 1;
}

int main(int argc, char ** argv) {
    if (argc >= 2 && (std::strcmp(argv[1], "train") == 0 || std::strcmp(argv[1], "finetune") == 0))
        return exec_trainer(argv);
    CLI::App app{"routescope: record, analyse and steer the expert routing of MoE language models"};
    app.require_subcommand(1);
    app.set_version_flag("--version", ROUTESCOPE_VERSION);
    rs::cli::add_demo(app);
    rs::cli::add_trace(app);
    rs::cli::add_trace_info(app);
    rs::cli::add_make_model(app);
    rs::cli::add_analyze(app);
    rs::cli::add_experts(app);
    rs::cli::add_steer(app);
    rs::cli::add_eval(app);
    rs::cli::add_compare(app);
    rs::cli::add_sweep(app);
    // listed in the help; `routescope train|finetune …` itself runs routescope-train (exec_trainer)
    app.add_subcommand("train", rs::cli::kTrainHelp)->allow_extras();
    app.add_subcommand("finetune", rs::cli::kFinetuneHelp)->allow_extras();
    rs::cli::add_ppl(app);
    rs::cli::add_report(app);
    return rs::cli::run_app(app, argc, argv);
}
