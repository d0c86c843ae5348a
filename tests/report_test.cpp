// End to end: `routescope demo` on the bundled model writes a report that headless Chromium renders with
// every figure drawn and no error; the static export; missing inputs; 24 languages × 48 layers; bad input.
// The page publishes what it rendered in <pre id="rs-status"> (report.cpp), read here from the DOM that
// Chromium dumps after running the scripts.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "test_util.h"

using namespace rs::test;
using nlohmann::json;

namespace {

const char * kChromium = "/usr/bin/chromium";

// The flags of a hermetic headless run: no network services, no first-run, no sandbox (containers), a fresh
// profile. --virtual-time-budget lets the page's promises (vega-embed) settle before the DOM is dumped.
std::string chromium_cmd(const fs::path & profile, const std::string & extra, const fs::path & html) {
    return std::string(kChromium) +
           " --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update"
           " --disable-sync --no-first-run --disable-dev-shm-usage --enable-logging=stderr --v=0"
           " --virtual-time-budget=30000 --user-data-dir=" +
           profile.string() + " " + extra + " file://" + fs::absolute(html).string();
}

struct Rendered {
    json status;                      // {rendered: [{id, marks, width, height}], errors: [...]}
    std::vector<std::string> titles;  // data-title of every figure container, in page order
    int n_absent = 0;
    std::vector<std::string> console;  // page console lines Chromium logged
};

Rendered render(const fs::path & html, const fs::path & work) {
    const fs::path dom = work / "dom.html", log = work / "chromium.log";
    const int rc = std::system(
        (chromium_cmd(work / "profile", "--dump-dom", html) + " > " + dom.string() + " 2> " + log.string())
            .c_str());
    EXPECT_EQ(rc, 0) << slurp(log);
    Rendered r;
    const std::string d = slurp(dom);
    // plain string search: std::regex trips GCC 12's -Wmaybe-uninitialized under the sanitizers
    if (const size_t pre = d.find("<pre id=\"rs-status\""); pre != std::string::npos) {
        const size_t open_end = d.find('>', pre), close = d.find("</pre>", pre);
        if (d.substr(pre, open_end - pre).find("data-done=\"1\"") != std::string::npos) {
            std::string text = d.substr(open_end + 1, close - open_end - 1);
            for (const auto & [from, to] : {std::pair{"&lt;", "<"}, {"&gt;", ">"}, {"&amp;", "&"}})
                for (size_t i; (i = text.find(from)) != std::string::npos;)
                    text.replace(i, std::strlen(from), to);
            r.status = json::parse(text);
        }
    }
    const std::string title_attr = "data-title=\"";
    for (size_t i = 0; (i = d.find(title_attr, i)) != std::string::npos; i += title_attr.size()) {
        const size_t b = i + title_attr.size();
        r.titles.push_back(d.substr(b, d.find('"', b) - b));
    }
    for (size_t i = 0; (i = d.find("data-absent=", i)) != std::string::npos; ++i) ++r.n_absent;
    std::istringstream lines(slurp(log));
    for (std::string line; std::getline(lines, line);)
        if (line.find(":CONSOLE") != std::string::npos) r.console.push_back(line);
    return r;
}

// Every figure container holds a drawn SVG with marks, and nothing went wrong in the page.
void expect_all_drawn(const Rendered & r) {
    ASSERT_TRUE(r.status.is_object()) << "the page did not finish rendering";
    EXPECT_TRUE(r.status["errors"].empty()) << r.status.dump();
    EXPECT_EQ(r.status["rendered"].size(), r.titles.size()) << r.status.dump();
    for (const auto & f : r.status["rendered"]) {
        EXPECT_GT(f["marks"].get<int>(), 10) << f.dump();
        EXPECT_GT(f["width"].get<double>(), 100) << f.dump();
        EXPECT_GT(f["height"].get<double>(), 100) << f.dump();
    }
    for (const auto & line : r.console) {
        EXPECT_EQ(line.find("Uncaught"), std::string::npos) << line;
        EXPECT_EQ(line.find("rror"), std::string::npos) << line;
    }
}

bool have_chromium() {
    return fs::exists(kChromium);
}

}  // namespace

// The acceptance test: the report of a real demo run (bundled model, FLoRes devtest) in Chromium.
TEST(Report, DemoReportRendersInHeadlessChromium) {
    if (!have_chromium()) GTEST_SKIP() << "chromium not installed (scripts/install-deps.sh installs it)";
    const auto dir = temp_dir("report_demo");
    const auto demo = run_cli("demo --limit 40 --threads 1 --out " + (dir / "demo").string());
    ASSERT_EQ(demo.exit_code, 0) << demo.err;
    EXPECT_NE(demo.out.find("Divergence of routing from eng_Latn"), std::string::npos) << demo.out;
    const fs::path html = dir / "demo" / "report.html";
    EXPECT_NE(demo.out.find(html.string()), std::string::npos) << demo.out;
    ASSERT_TRUE(fs::exists(html));
    EXPECT_LT(fs::file_size(html), 3'000'000u);
    EXPECT_NE(slurp(html).find("<td>swh_Latn</td><td>40</td>"), std::string::npos);  // per-language table

    const auto r = render(html, dir);
    expect_all_drawn(r);
    // no steering, no chen/rise experts and no finetune in the demo: those five figures are marked absent,
    // the seven analysis figures drawn
    const std::vector<std::string> want = {"Routing divergence from eng_Latn per layer",
                                           "Routing entropy per layer",
                                           "Token routing consistency per layer",
                                           "Δ activation frequency per expert",
                                           "Selected experts per layer",
                                           "Language × language routing divergence and clustering",
                                           "Routing isolation per layer"};
    EXPECT_EQ(r.titles, want);
    EXPECT_EQ(r.n_absent, 5);

    // a screenshot of the whole page, kept beside the test's outputs
    const fs::path shot = fs::path(RS_BINARY_DIR) / "tests" / "report-demo.png";
    fs::remove(shot);
    ASSERT_EQ(std::system((chromium_cmd(dir / "profile2",
                                        "--window-size=1280,4800 --screenshot=" + shot.string(), html) +
                           " > /dev/null 2>&1")
                              .c_str()),
              0);
    ASSERT_TRUE(fs::exists(shot));
    EXPECT_GT(fs::file_size(shot), 50'000u);  // a blank page is a few KB
}

// --figures: every drawn figure as Vega-Lite JSON, SVG (with marks) and PNG, from the same specs.
TEST(Report, StaticExportWritesSvgAndPng) {
    const auto dir = temp_dir("report_export");
    const auto model = tiny_model("olmoe", 6, 8, 2);
    ASSERT_EQ(run_cli("trace --model " + model + " --corpus " + flores_devtest() +
                      " --langs eng_Latn,deu_Latn,hin_Deva --limit 12 --threads 1 --no-progress --out " +
                      (dir / "trace").string())
                  .exit_code,
              0);
    ASSERT_EQ(
        run_cli("analyze " + (dir / "trace").string() + " --bootstrap 50 -t 1 -o " + (dir / "an").string())
            .exit_code,
        0);
    ASSERT_EQ(run_cli("experts " + (dir / "trace").string() + " --multilingual --tau 0.05 -t 1 -o " +
                      (dir / "an" / "experts.json").string())
                  .exit_code,
              0);
    // issue #12 item 6: Chen's shared / exclusive experts and RISE's zones and subnetwork
    ASSERT_EQ(run_cli("experts " + (dir / "trace").string() + " --method chen -t 1 -o " +
                      (dir / "an" / "chen.json").string())
                  .exit_code,
              0);
    ASSERT_EQ(run_cli("experts " + (dir / "trace").string() +
                      " --method rise --target-lang hin_Deva -t 1 -o " + (dir / "an" / "rise.json").string())
                  .exit_code,
              0);
    const auto r = run_cli("report " + dir.string() + " --out " + (dir / "r.html").string() + " --figures " +
                           (dir / "figs").string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("report: 9 figures, 3 absent"), std::string::npos) << r.out;
    for (const char * id : {"divergence", "entropy", "consistency", "expert_delta", "experts_per_layer",
                            "pairwise", "isolation", "chen_sets", "rise_subnetwork"}) {
        const auto svg = slurp(dir / "figs" / (std::string(id) + ".svg"));
        EXPECT_EQ(svg.rfind("<svg", 0), 0u) << id;
        EXPECT_GT(std::count(svg.begin(), svg.end(), '<'), 20) << id;
        const auto png = slurp(dir / "figs" / (std::string(id) + ".png"));
        EXPECT_EQ(png.substr(1, 3), "PNG") << id;
        EXPECT_TRUE(json::parse(slurp(dir / "figs" / (std::string(id) + ".vl.json"))).contains("$schema"))
            << id;
    }
}

// Only a compare.csv: the analysis figures are absent, the steering figures and Table 2 are there.
TEST(Report, MissingInputsAreMarkedAbsent) {
    if (!have_chromium()) GTEST_SKIP() << "chromium not installed";
    const auto dir = temp_dir("report_absent");
    {
        std::ofstream f(dir / "compare.csv");
        f << "task,lang,n,n_unpaired,base,steered,delta,ci_lo,ci_hi,b,c,p_mcnemar,p_mcnemar_chi2,pivot,low_"
             "resource\n"
             "mgsm,eng_Latn,50,0,0.40,0.42,0.02,-0.04,0.08,2,3,1,1,1,0\n"
             "mgsm,swh_Latn,50,0,0.10,0.16,0.06,0.00,0.12,1,4,0.375,0.37,0,1\n"
             "mgsm,AVG_non_pivot,1,0,0.10,0.16,0.06,0.00,0.12,1,0,1,,0,0\n"
             "mgsm,AVG_low_resource,0,0,,,,,,0,0,,,0,1\n";
    }
    const auto r = run_cli("report " + dir.string() + " --out " + (dir / "r.html").string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("report: 2 figures, 10 absent"), std::string::npos) << r.out;
    const std::string html = slurp(dir / "r.html");
    EXPECT_NE(
        html.find(
            "<td>swh_Latn</td><td>50</td><td>10.0</td><td>16.0</td><td>+6.0</td><td>[+0.0, +12.0]</td>"),
        std::string::npos);
    EXPECT_EQ(html.find("https://cdn"), std::string::npos);  // offline: nothing fetched
    const auto page = render(dir / "r.html", dir);
    expect_all_drawn(page);
    EXPECT_EQ(page.titles, (std::vector<std::string>{"Base vs steered accuracy per language",
                                                     "Effect of steering per language"}));
    EXPECT_EQ(page.n_absent, 10);
}

// The scale of a real study: 24 languages × 48 layers stays small and renders (one layer per heatmap view,
// two-column legend).
TEST(Report, TwentyFourLanguagesFortyEightLayers) {
    if (!have_chromium()) GTEST_SKIP() << "chromium not installed";
    const auto dir = temp_dir("report_large");
    const auto model = tiny_model("olmoe", 48, 8, 2);
    const std::string langs =
        "eng_Latn,deu_Latn,fra_Latn,spa_Latn,por_Latn,ita_Latn,rus_Cyrl,zho_Hans,jpn_Jpan,kor_Hang,arb_Arab,"
        "hin_Deva,ben_Beng,tel_Telu,tha_Thai,ind_Latn,pes_Arab,lit_Latn,srp_Cyrl,swh_Latn,yor_Latn,bam_Latn,"
        "asm_Beng,ory_Orya";
    ASSERT_EQ(run_cli("trace --model " + model + " --corpus " + flores_devtest() + " --langs " + langs +
                      " --limit 4 --threads 1 --no-progress --out " + (dir / "trace").string())
                  .exit_code,
              0);
    ASSERT_EQ(
        run_cli("analyze " + (dir / "trace").string() + " --bootstrap 20 -t 1 -o " + (dir / "an").string())
            .exit_code,
        0);
    const auto r = run_cli("report " + dir.string() + " --out " + (dir / "r.html").string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_LT(fs::file_size(dir / "r.html"), 3'000'000u);
    const auto page = render(dir / "r.html", dir);
    expect_all_drawn(page);
    EXPECT_EQ(page.titles.size(), 5u);                                          // no experts, no steering
    EXPECT_NE(slurp(dir / "r.html").find("\"columns\":2"), std::string::npos);  // the legend of 23 languages
}

TEST(Report, BadInputGivesOneLineErrors) {
    const auto dir = temp_dir("report_bad");
    expect_clean_error(run_cli("report " + (dir / "nope").string() + " --out " + (dir / "r.html").string()),
                       "is not a directory");
    expect_clean_error(run_cli("report " + dir.string() + " --out " + (dir / "r.html").string()),
                       "no outputs of analyze, experts or compare");
    {
        std::ofstream f(dir / "divergence.csv");
        f << "model,trace,lang\nm,t,eng_Latn\n";
    }
    expect_clean_error(run_cli("report " + dir.string() + " --out " + (dir / "r.html").string()),
                       "no column layer");
    fs::remove(dir / "divergence.csv");
    std::ofstream(dir / "clusters.json") << "{not json";
    expect_clean_error(run_cli("report " + dir.string() + " --out " + (dir / "r.html").string()), "not JSON");
}
