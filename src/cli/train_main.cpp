// routescope-train: `routescope train` and `routescope finetune`, the commands that need libtorch, as their
// own executable so the others start without loading it (routescope execs this one for them).
#include "commands.h"

int main(int argc, char ** argv) {
    CLI::App app{"routescope: record, analyse and steer the expert routing of MoE language models",
                 "routescope"};
    app.require_subcommand(1);
    app.set_version_flag("--version", ROUTESCOPE_VERSION);
    rs::cli::add_train(app);
    rs::cli::add_finetune(app);
    return rs::cli::run_app(app, argc, argv);
}
