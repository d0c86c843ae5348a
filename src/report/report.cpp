// write_report (report.h): find the outputs of analyze/experts/compare under the run directories, build the
// figures (figures.cpp), and write one self-contained HTML page with Vega, Vega-Lite and vega-embed inlined.
#include "routescope/report.h"

#include <fmt/format.h>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "report_internal.h"
#include "routescope/analysis.h"
#include "routescope/common.h"
#include "routescope/datasets.h"
#include "routescope/file_io.h"
#include "routescope/resources.h"

namespace fs = std::filesystem;

namespace rs::report {

int Table::col(const std::string & name) const {
    const auto it = std::find(header.begin(), header.end(), name);
    return it == header.end() ? -1 : (int)(it - header.begin());
}

// Five significant digits: what a figure or tooltip can show, and a third of the bytes of a full double.
static double round_sig(double v) {
    return std::strtod(fmt::format("{:.5g}", v).c_str(), nullptr);
}

json Table::records(const std::vector<std::string> & columns) const {
    std::vector<int> idx;
    for (const auto & c : columns) {
        idx.push_back(col(c));
        if (idx.back() < 0) throw Error(fmt::format("{}: no column {}", path, c));
    }
    json out = json::array();
    for (const auto & r : rows) {
        json o = json::object();
        for (size_t i = 0; i < columns.size(); ++i) {
            const std::string & cell = (size_t)idx[i] < r.size() ? r[(size_t)idx[i]] : std::string();
            char * end = nullptr;
            const double v = cell.empty() ? 0.0 : std::strtod(cell.c_str(), &end);
            if (cell.empty())
                o[columns[i]] = nullptr;
            else if (end && *end == '\0' && std::isfinite(v))
                o[columns[i]] =
                    cell.find_first_of(".eE") == std::string::npos ? json((int64_t)v) : json(round_sig(v));
            else
                o[columns[i]] = cell;
        }
        out.push_back(std::move(o));
    }
    return out;
}

namespace {

Table read_table(const fs::path & path) {
    const std::string text = read_file(path.string());
    auto rows = parse_csv(text, path.string());
    if (rows.empty()) throw Error(fmt::format("{}: empty file", path.string()));
    Table t{path.string(), std::move(rows.front()), {}};
    rows.erase(rows.begin());
    t.rows = std::move(rows);
    return t;
}

bool starts_with(const std::string & s, const std::string & p) {
    return s.rfind(p, 0) == 0;
}

std::string first_line(const fs::path & p) {  // the header only: results.csv files can be large
    std::ifstream f(p);
    std::string line;
    std::getline(f, line);
    return line;
}

// The run directories and their sub-directories two levels down, in a stable order; the first file of
// each kind wins (a later one of the same kind is listed as ignored in the inputs).
Inputs find_inputs(const ReportOptions & opt) {
    Inputs in;
    std::vector<fs::path> files;
    for (const auto & d : opt.run_dirs) {
        if (!fs::is_directory(d)) throw Error(fmt::format("report: {} is not a directory", d));
        std::vector<fs::path> here;
        for (auto it = fs::recursive_directory_iterator(d); it != fs::recursive_directory_iterator(); ++it) {
            if (it->is_directory() && it.depth() >= 2) it.disable_recursion_pending();
            if (it->is_regular_file()) here.push_back(it->path());
        }
        std::sort(here.begin(), here.end(), [](const fs::path & a, const fs::path & b) {
            const auto da = std::distance(a.begin(), a.end()), db = std::distance(b.begin(), b.end());
            return da != db ? da < db : a < b;  // shallower first
        });
        files.insert(files.end(), here.begin(), here.end());
    }
    auto take_table = [&](std::optional<Table> & slot, const fs::path & p) {
        if (slot) return;
        slot = read_table(p);
        in.files.push_back(p.string());
    };
    auto take_json = [&](json & slot, const fs::path & p) {
        if (!slot.is_null()) return;
        try {
            slot = json::parse(read_file(p.string()));
        } catch (const json::exception & e) {
            throw Error(fmt::format("{}: not JSON: {} (re-run the command that wrote it)", p.string(),
                                    json_error_text(e.what())));
        }
        in.files.push_back(p.string());
    };
    for (const auto & p : files) {
        const std::string name = p.filename().string();
        if (name == "divergence.csv")
            take_table(in.divergence, p);
        else if (name == "entropy.csv")
            take_table(in.entropy, p);
        else if (name == "consistency.csv")
            take_table(in.consistency, p);
        else if (name == "pairwise.csv")
            take_table(in.pairwise, p);
        else if (name == "isolation.csv")
            take_table(in.isolation, p);
        else if (name == "compare.csv")
            take_table(in.compare, p);
        else if (name == "clusters.json")
            take_json(in.clusters, p);
        else if (name == "summary.json" && fs::exists(p.parent_path() / "divergence.csv"))
            take_json(in.summary, p);
        else if (p.extension() == ".csv" && !in.experts &&
                 starts_with(first_line(p), "layer,expert,freq_target")) {
            take_table(in.experts, p);  // `experts` writes X.json (with τ) beside X.csv
            if (auto j = fs::path(p).replace_extension(".json"); fs::exists(j)) take_json(in.experts_json, j);
        } else if (p.extension() == ".csv" && !in.chen &&
                   starts_with(first_line(p), "layer,expert,lang,freq,share,shared,exclusive")) {
            take_table(in.chen, p);  // `experts --method chen`
            if (auto j = fs::path(p).replace_extension(".json"); fs::exists(j)) take_json(in.chen_json, j);
        } else if (p.extension() == ".csv" && !in.rise &&
                   starts_with(first_line(p), "zone,layer,expert,score,")) {
            take_table(in.rise, p);  // `experts --method rise`: the selected subnetwork
            if (auto j = fs::path(p).replace_extension(".json"); fs::exists(j)) take_json(in.rise_json, j);
        } else if (p.extension() == ".csv" && starts_with(first_line(p), "condition,seed,lang,bpc,")) {
            take_table(in.finetune, p);  // `demo --finetune`, scripts/rise-finetune-experiment.sh
        }
    }
    if (!opt.scores.empty()) in.scores = read_scores(opt.scores);
    if (in.files.empty())
        throw Error(fmt::format("report: no outputs of analyze, experts or compare under {}",
                                fmt::join(opt.run_dirs, ", ")));
    return in;
}

// Text inside <script>: "</script" would end the element early. In JSON every "</" can be written "<\/";
// in the libraries' JS (where "</" also occurs in regular expressions) only "</script" is rewritten,
// which is safe because it can only occur inside a string or a regular expression.
std::string script_safe(std::string s, const std::string & tag) {
    for (size_t i = 0; (i = s.find(tag, i)) != std::string::npos; i += tag.size() + 1)
        s.replace(i, 2, "<\\/");
    return s;
}

std::string html_escape(const std::string & s) {
    std::string o;
    for (char c : s) {
        switch (c) {
            case '&':
                o += "&amp;";
                break;
            case '<':
                o += "&lt;";
                break;
            case '>':
                o += "&gt;";
                break;
            case '"':
                o += "&quot;";
                break;
            default:
                o += c;
        }
    }
    return o;
}

std::string assets_dir(const ReportOptions & opt) {
    if (!opt.assets_dir.empty()) return opt.assets_dir;
        // installed: <prefix>/share/routescope/web; build tree: <build>/web, where npm ci put them
#ifdef RS_WEB_DIR
    return resource_path("ROUTESCOPE_WEB", "web", RS_WEB_DIR);
#else
    return resource_path("ROUTESCOPE_WEB", "web", "web");
#endif
}

const char * const kLibraries[] = {"vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js",
                                   "vega-embed/build/vega-embed.min.js"};

std::string read_asset(const std::string & dir, const std::string & rel) {
    const fs::path p = fs::path(dir) / "node_modules" / rel;
    if (!fs::is_regular_file(p))
        throw Error(fmt::format(
            "report: {} not found: the plotting libraries are installed by the build (npm ci in "
            "<build>/web; needs npm) — rebuild, or point ROUTESCOPE_WEB at a directory with node_modules/",
            p.string()));
    return read_file(p.string());
}

// Run facts from analyze's summary.json, for the page header.
std::string run_facts(const Inputs & in) {
    if (!in.summary.is_object())
        return "<p class=\"facts\">No summary.json of <code>analyze</code> found.</p>";
    const auto & s = in.summary;
    const auto & m = s.value("model", json::object());
    std::string langs;
    if (s.contains("languages"))
        for (const auto & [k, _] : s["languages"].items()) langs += (langs.empty() ? "" : ", ") + k;
    std::string mid = "none found";
    if (s.contains("middle_layers") && s["middle_layers"].is_object())
        mid = fmt::format("{}–{} ({})", s["middle_layers"].value("first", -1),
                          s["middle_layers"].value("last", -1),
                          s["middle_layers"].value("auto", true) ? "automatic" : "given");
    return fmt::format(
        "<table class=\"facts\"><tr><th>model</th><td>{} ({}; {} MoE layers × {} experts, top-{})</td></tr>"
        "<tr><th>data</th><td>{} sequences, {} tokens</td></tr>"
        "<tr><th>languages</th><td>{}</td></tr>"
        "<tr><th>pivot</th><td>{}</td></tr><tr><th>middle layers</th><td>{}</td></tr></table>",
        html_escape(m.value("name", "?")), html_escape(m.value("arch", "?")),
        m.contains("moe_layers") ? m["moe_layers"].size() : 0, m.value("n_expert", 0), m.value("top_k", 0),
        s.value("n_sequences", 0), s.value("n_tokens", 0), html_escape(langs),
        html_escape(s.value("pivot", "?")), mid);
}

// Per-language means over the headline (middle) layers from summary.json: the table a paper quotes.
std::string language_table_html(const Inputs & in) {
    if (!in.summary.is_object() || !in.summary.contains("languages")) return "";
    std::string layers;
    for (const auto & l : in.summary.value("headline_layers", json::array()))
        layers += (layers.empty() ? "" : ", ") + l.dump();
    std::string h = fmt::format(
        "<table class=\"data\" id=\"table-languages\"><caption>Per language, mean over layers {} "
        "(summary.json)</caption><tr><th>language</th><th>sequences</th><th>divergence from {}</th>"
        "<th>entropy</th><th>consistency</th></tr>",
        layers.empty() ? "–" : layers, html_escape(in.summary.value("pivot", "?")));
    auto num = [](const json & v) {
        return v.is_number() ? fmt::format("{:.4f}", v.get<double>()) : std::string("–");
    };
    for (const auto & [lang, v] : in.summary["languages"].items())
        h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                         html_escape(lang), v.value("n_seq", 0), num(v.value("divergence", json())),
                         num(v.value("entropy", json())), num(v.value("consistency", json())));
    return h + "</table>";
}

// Table 2 of the paper from compare.csv.
std::string compare_table_html(const Inputs & in) {
    if (!in.compare) return "";
    std::string h =
        "<table class=\"data\" id=\"table-compare\"><caption>Base vs steered (compare.csv): accuracy, Δ with "
        "95% paired bootstrap CI, McNemar "
        "p</caption><tr><th>task</th><th>language</th><th>n</th><th>base</th>"
        "<th>steered</th><th>Δ</th><th>95% CI</th><th>p</th></tr>";
    auto pct = [](const json & v, const char * f) {
        return v.is_number() ? fmt::format(fmt::runtime(f), 100 * v.get<double>()) : std::string("–");
    };
    for (const auto & r : in.compare->records(
             {"task", "lang", "n", "base", "steered", "delta", "ci_lo", "ci_hi", "p_mcnemar"}))
        h += fmt::format(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>[{}, "
            "{}]</td><td>{}</td></tr>",
            html_escape(r["task"].dump()), html_escape(r["lang"].get<std::string>()), r["n"].dump(),
            pct(r["base"], "{:.1f}"), pct(r["steered"], "{:.1f}"), pct(r["delta"], "{:+.1f}"),
            pct(r["ci_lo"], "{:+.1f}"), pct(r["ci_hi"], "{:+.1f}"),
            r["p_mcnemar"].is_number() ? fmt::format("{:.3g}", r["p_mcnemar"].get<double>()) : "–");
    return h + "</table>";
}

constexpr const char * kStyle = R"(
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:1.6em;margin-bottom:4px} h2{margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}
nav a{margin-right:14px} .caption{color:#555;max-width:860px;font-size:.92em}
.figure{margin:18px 0 28px} .absent{color:#8a6d3b;background:#fcf8e3;border:1px solid #faebcc;padding:8px 12px}
table.facts th{text-align:left;padding-right:12px;color:#555;font-weight:normal}
table.data{border-collapse:collapse;font-size:.9em;margin:8px 0} table.data td,table.data th{border:1px solid #ccc;padding:3px 8px;text-align:right}
table.data caption{text-align:left;color:#555;padding-bottom:4px} .vega-bindings{margin:6px 0}
footer{margin-top:40px;color:#777;font-size:.85em}
)";

// Renders every figure with vega-embed (SVG renderer), then publishes what happened in #rs-status so that
// a headless browser test can read it from the DOM: figures rendered, marks drawn, errors raised.
constexpr const char * kBoot = R"(
(function () {
  const figs = JSON.parse(document.getElementById('rs-figures').textContent);
  const status = {rendered: [], errors: []};
  window.addEventListener('error', e => status.errors.push(String(e.message)));
  const done = Object.entries(figs).map(([id, spec]) =>
    vegaEmbed('#fig-' + id, spec, {renderer: 'svg', actions: {export: true, source: true, compiled: false, editor: false}})
      .then(r => {
        const svg = document.querySelector('#fig-' + id + ' svg');
        const marks = svg ? svg.querySelectorAll('path, rect, line, circle, text').length : 0;
        status.rendered.push({id: id, marks: marks, width: svg ? svg.getBoundingClientRect().width : 0,
                              height: svg ? svg.getBoundingClientRect().height : 0});
        return r;
      })
      .catch(e => { status.errors.push(id + ': ' + e); console.error('figure ' + id + ': ' + e); }));
  Promise.all(done).then(() => {
    const pre = document.getElementById('rs-status');
    pre.textContent = JSON.stringify(status);
    pre.dataset.done = '1';
  });
})();
)";

std::string page(const ReportOptions & opt, const Inputs & in, const std::vector<Figure> & figs,
                 const std::string & assets) {
    std::string model =
        in.summary.is_object() ? in.summary.value("model", json::object()).value("name", "") : "";
    const std::string title = !opt.title.empty() ? opt.title
                              : model.empty()    ? std::string("routescope report")
                                                 : "routescope report — " + model;
    std::string body, nav;
    std::string section;
    json specs = json::object();
    for (const auto & f : figs) {
        if (f.section != section) {
            section = f.section;
            std::string anchor = section;
            std::replace(anchor.begin(), anchor.end(), ' ', '-');
            body += fmt::format("<h2 id=\"{}\">{}</h2>\n", html_escape(anchor), html_escape(section));
            nav += fmt::format("<a href=\"#{}\">{}</a>", html_escape(anchor), html_escape(section));
        }
        if (f.spec.is_null()) {
            body +=
                fmt::format("<div class=\"figure absent\" data-absent=\"{}\"><b>{}</b> — absent: {}</div>\n",
                            f.id, html_escape(f.title), html_escape(f.missing));
            continue;
        }
        specs[f.id] = f.spec;
        body += fmt::format(
            "<div class=\"figure\" data-figure=\"{}\" data-title=\"{}\"><div id=\"fig-{}\"></div><p "
            "class=\"caption\">{}</p></div>\n",
            f.id, html_escape(f.title), f.id, html_escape(f.caption));
        if (f.id == "steering_delta") body += compare_table_html(in);
        if (f.id == "divergence") body += language_table_html(in);
    }
    std::string libs;
    for (const char * rel : kLibraries)
        libs += "<script>" + script_safe(read_asset(assets, rel), "</script") + "</script>\n";
    std::string inputs;
    for (const auto & p : in.files) inputs += "<li><code>" + html_escape(p) + "</code></li>";
    return fmt::format(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>{0}</title>\n"
        "<style>{1}</style>\n{2}</head>\n<body>\n<h1>{0}</h1>\n{3}\n<nav>{4}</nav>\n{5}\n"
        "<footer><p>Inputs:</p><ul>{6}</ul><p>Made by routescope {7}; figures by Vega-Lite "
        "(BSD-3-Clause).</p>"
        "</footer>\n<pre id=\"rs-status\" hidden></pre>\n"
        "<script type=\"application/json\" "
        "id=\"rs-figures\">{8}</script>\n<script>{9}</script>\n</body></html>\n",
        html_escape(title), kStyle, libs, run_facts(in), nav, body, inputs, ROUTESCOPE_VERSION,
        script_safe(specs.dump(), "</"), kBoot);
}

std::string shell_quote(const std::string & s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

void run_or_throw(const std::string & cmd, const std::string & what) {
    const int rc = std::system(cmd.c_str());
    if (rc != 0) throw Error(fmt::format("report: {} failed (exit status {}): {}", what, rc, cmd));
}

// --figures: the same specs as standalone Vega-Lite files, SVG by Vega under Node.js, PNG by rsvg-convert.
std::vector<std::string> export_figures(const std::vector<Figure> & figs, const std::string & dir,
                                        const std::string & assets) {
    fs::create_directories(dir);
    std::vector<std::string> out, ids;
    for (const auto & f : figs) {
        if (f.spec.is_null()) continue;
        json s = f.spec;
        s["background"] = "white";
        const std::string p = (fs::path(dir) / (f.id + ".vl.json")).string();
        write_file_atomic(p, s.dump(1) + "\n");
        out.push_back(p);
        ids.push_back(f.id);
    }
    if (ids.empty()) return out;
    const std::string script = (fs::path(assets) / "render-figures.mjs").string();
    if (!fs::is_regular_file(script))
        throw Error("report: " + script + " not found (rebuild: it is copied with the npm install)");
    std::string cmd = "node " + shell_quote(script) + " " + shell_quote(dir);
    for (const auto & id : ids) cmd += " " + id;
    run_or_throw(cmd, "SVG export (node; apt-get install nodejs)");
    for (const auto & id : ids) {
        const auto svg = (fs::path(dir) / (id + ".svg")).string(),
                   png = (fs::path(dir) / (id + ".png")).string();
        run_or_throw(fmt::format("rsvg-convert --zoom 2 --format png --output {} {}", shell_quote(png),
                                 shell_quote(svg)),
                     "PNG export (rsvg-convert; apt-get install librsvg2-bin)");
        out.push_back(svg);
        out.push_back(png);
    }
    return out;
}

}  // namespace
}  // namespace rs::report

namespace rs {

ReportSummary write_report(const ReportOptions & opt) {
    using namespace report;
    if (opt.run_dirs.empty()) throw Error("report: no run directory given");
    if (opt.out.empty()) throw Error("report: no output file (--out)");
    const Inputs in = find_inputs(opt);
    const auto figs = build_figures(in);
    const std::string assets = assets_dir(opt);
    write_file_atomic(opt.out, page(opt, in, figs, assets));
    ReportSummary s;
    for (const auto & f : figs) {
        if (f.spec.is_null())
            s.absent.push_back(f.title + ": " + f.missing);
        else
            s.figures.push_back({f.id, f.title});
    }
    s.inputs = in.files;
    s.bytes = fs::file_size(opt.out);
    if (!opt.figures_dir.empty()) s.exported = export_figures(figs, opt.figures_dir, assets);
    return s;
}

}  // namespace rs
