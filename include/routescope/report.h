// `routescope report`: one self-contained HTML file with the paper's figures, built from the CSV/JSON
// outputs of `analyze`, `experts` and `compare` found in the given run directories. The figures are
// Vega-Lite specifications (data inlined) rendered by vega-embed; the three libraries come from the npm
// registry at build time (web/package.json) and are inlined too, so the file opens offline.
// Figures whose inputs are missing are listed as absent in their section instead of failing the report.
// With figures_dir, every figure is also exported as <id>.vl.json, <id>.svg (Vega's own SVG renderer,
// under Node.js) and <id>.png (rsvg-convert) from the same specifications.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rs {

struct ReportOptions {
    std::vector<std::string> run_dirs;  // searched two levels deep for the known output files
    std::string out = "report.html";
    std::string figures_dir;  // empty: no static export
    std::string scores;       // optional TSV lang<TAB>score (as `analyze --scores`): colours Fig. 2 lines
    std::string title;        // default: "routescope report — <model>"
    std::string
        assets_dir;  // empty: $ROUTESCOPE_WEB, else share/routescope/web (installed), else <build>/web
};

struct ReportFigure {
    std::string id, title;
};

struct ReportSummary {
    std::vector<ReportFigure> figures;  // rendered, in page order
    std::vector<std::string> absent;    // "<figure title>: <what is missing>"
    std::vector<std::string> inputs;    // files read
    std::vector<std::string> exported;  // files written under figures_dir
    std::uintmax_t bytes = 0;           // size of the HTML file
};

// rs::Error when no run directory holds any known output, or when the assets or exporters are missing.
ReportSummary write_report(const ReportOptions & opt);

}  // namespace rs
