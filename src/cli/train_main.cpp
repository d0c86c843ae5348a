// routescope-train: `routescope train`, the one command that needs libtorch, as its own executable so the
// others start without loading it (routescope execs this one for `train`).
#include "commands.h"

int main(int argc, char ** argv) {
    CLI::App app{"routescope: record, analyse and steer the expert routing of MoE language models",
                 "routescope"};
    app.require_subcommand(1);
    app.set_version_flag("--version", ROUTESCOPE_VERSION);
    rs::cli::add_train(app);
    return rs::cli::run_app(app, argc, argv);
}
