// `routescope report`: the HTML report and the static figures (report.h).
#include <fmt/format.h>

#include "commands.h"
#include "routescope/report.h"

namespace rs::cli {

void print_report_summary(const ReportSummary & s, const std::string & out) {
    fmt::print("report: {} figures, {} absent, {:.1f} MB -> {}\n", s.figures.size(), s.absent.size(),
               (double)s.bytes / 1e6, out);
    for (const auto & a : s.absent) fmt::print("  absent: {}\n", a);
    if (!s.exported.empty()) fmt::print("report: {} figure files written\n", s.exported.size());
}

void add_report(CLI::App & app) {
    auto * cmd =
        app.add_subcommand("report", "One self-contained HTML report (and SVG/PNG figures) from run outputs");
    auto opt = std::make_shared<ReportOptions>();
    cmd->add_option("runs", opt->run_dirs,
                    "directories holding outputs of analyze, experts, compare/sweep (searched 2 levels deep)")
        ->required();
    cmd->add_option("--out,-o", opt->out, "the HTML file")->capture_default_str();
    cmd->add_option("--figures", opt->figures_dir,
                    "also export every figure as .vl.json, .svg and .png here");
    cmd->add_option("--scores", opt->scores,
                    "TSV lang<TAB>score with a header: colour the divergence lines by it");
    cmd->add_option("--title", opt->title, "page title (default: from the model name)");
    cmd->footer(
        "Figures: divergence from the pivot (Fig. 2), entropy and consistency (Figs. 3-4), Δ per expert and\n"
        "selected experts per layer (Figs. A.9, 5), language × language heatmap with its clustering, "
        "routing\n"
        "isolation, base vs steered accuracy (Table 2). Missing inputs are marked absent in the page.");
    cmd->callback([opt] { print_report_summary(write_report(*opt), opt->out); });
}

}  // namespace rs::cli
