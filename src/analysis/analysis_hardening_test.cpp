// Issue #15 at the analysis entry points: invalid options and --scores files are rs::Error before any
// output is written; outputs appear together or not at all; bad shard values never become a result.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

#include "routescope/analysis.h"
#include "routescope/common.h"
#include "routescope/trace.h"

namespace {

namespace fs = std::filesystem;

fs::path tmp(const std::string & name) {
    const fs::path d = fs::path(testing::TempDir()) / ("rs_harden_" + name);
    fs::remove_all(d);
    return d;
}

// Two languages × 4 parallel groups, 2 MoE layers (blocks 1, 2), 4 experts, top-2; p uniform-ish.
// `nan_at` >= 0 writes a NaN probability at that flat index of shard 0 (bypassing write-time checks).
fs::path synth_trace(const std::string & name, int nan_at = -1) {
    const fs::path dir = tmp(name);
    fs::create_directories(dir);
    rs::TraceManifest m;
    m.model_sha256 = "abc", m.arch = "olmoe", m.model_name = "synth", m.n_layer = 3, m.moe_layers = {1, 2};
    m.n_expert = 4, m.top_k = 2, m.gating = "softmax", m.corpus = "synthetic";
    m.langs = {"eng_Latn", "deu_Latn"}, m.domains = {"flores"};
    m.n_sequences = 8, m.seqs_per_shard = 8, m.probs_dtype = "f32";
    rs::write_manifest(dir.string(), m);
    rs::TraceShard s;
    s.n_moe = 2, s.n_expert = 4, s.top_k = 2;
    for (int i = 0; i < 8; ++i) {
        s.seqs.push_back({i, i / 2, i % 2, 0, "s" + std::to_string(i), s.n_tok(), 2});
        for (int t = 0; t < 2; ++t) {
            s.tokens.push_back(t);
            for (int l = 0; l < 2; ++l) {
                const float a = 0.1f + 0.05f * (float)((i + t + l) % 4);
                const float p[4] = {a, 0.5f - a, 0.3f, 0.2f};
                s.probs.insert(s.probs.end(), p, p + 4);
                s.topk.push_back(a > 0.25f ? 0 : 1);
                s.topk.push_back(2);
            }
        }
    }
    if (nan_at >= 0) s.probs[(size_t)nan_at] = std::nanf("");
    rs::write_shard(dir.string(), 0, m, s);
    return dir;
}

std::string error_of(const std::function<void()> & fn) {
    try {
        fn();
    } catch (const rs::Error & e) {
        return e.what();
    }
    return "";
}

rs::AnalyzeOptions analyze_opts(const fs::path & trace, const fs::path & out) {
    rs::AnalyzeOptions o;
    o.traces = {trace.string()};
    o.out_dir = out.string();
    o.n_threads = 1;
    o.bootstrap_resamples = 20;
    return o;
}

void write(const fs::path & p, const std::string & s) {
    std::ofstream(p, std::ios::binary) << s;
}

}  // namespace

TEST(AnalysisHardening, OptionsRefusedBeforeAnyOutput) {
    const auto trace = synth_trace("opts");
    const auto out = tmp("opts_out");
    auto o = analyze_opts(trace, out);
    o.bootstrap_resamples = 0;  // 4. of the issue: used to abort in the bootstrap
    EXPECT_NE(error_of([&] { rs::run_analyze(o); }).find("--bootstrap 0"), std::string::npos);
    o.bootstrap_resamples = -5;
    EXPECT_THROW(rs::run_analyze(o), rs::Error);
    o = analyze_opts(trace, out);
    o.middle = rs::LayerRange{0, 99};  // 13.: used to be clamped silently
    EXPECT_NE(error_of([&] { rs::run_analyze(o); }).find("outside the model's blocks 0..2"),
              std::string::npos);
    EXPECT_FALSE(fs::exists(out));

    rs::ExpertsOptions e;
    e.traces = {trace.string()};
    e.multilingual = true;
    e.n_threads = 1;
    e.out = (out / "experts.json").string();
    for (const double tau : {std::nan(""), 1.0, -2.0, (double)INFINITY}) {
        e.tau = tau;
        EXPECT_NE(error_of([&] { rs::run_experts(e); }).find("--tau"), std::string::npos) << tau;
    }
    EXPECT_FALSE(fs::exists(out));
}

TEST(AnalysisHardening, ScoresFilesAreStrict) {
    const auto trace = synth_trace("scores");
    const auto dir = tmp("scores_files");
    fs::create_directories(dir);
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"", "empty scores file"},
        {"deu_Latn\t0.3\n", "looks like data"},  // no header: its first row used to be dropped
        {"lang\tscore\ndeu_Latn\t0.3xyz\n", ":2: expected lang<TAB>score"},
        {"lang\tscore\ndeu_Latn\tnan\n", "not finite"},
        {"lang\tscore\ndeu_Latn\t0.3\ndeu_Latn\t0.4\n", "appears twice"},
        {"lang\tscore\nxxx_Latn\t0.3\n", "language xxx_Latn is in no trace"},
        {"lang\tscore\n", "no score rows"},
        {"lang\tscore\ndeu_Latn\t 0.3\n", "expected lang<TAB>score"},
    };
    for (size_t i = 0; i < bad.size(); ++i) {
        const auto p = dir / ("s" + std::to_string(i) + ".tsv");
        write(p, bad[i].first);
        auto o = analyze_opts(trace, dir / "out");
        o.scores = p.string();
        const auto msg = error_of([&] { rs::run_analyze(o); });
        EXPECT_NE(msg.find(bad[i].second), std::string::npos) << bad[i].first << " -> " << msg;
        EXPECT_EQ(msg.rfind(p.string(), 0), 0u) << "the message starts with the file: " << msg;
    }
    EXPECT_FALSE(fs::exists(dir / "out"));
    write(dir / "ok.tsv", "lang\tscore\ndeu_Latn\t0.5\r\neng_Latn\t1\n");
    auto o = analyze_opts(trace, dir / "out");
    o.scores = (dir / "ok.tsv").string();
    EXPECT_NO_THROW(rs::run_analyze(o));
    EXPECT_TRUE(fs::exists(dir / "out" / "correlation.csv"));
}

// 5. of the issue: a run that fails late leaves the previous outputs untouched, with no new file beside
// them and no temporary; a later run without --scores removes the stale correlation.csv.
TEST(AnalysisHardening, OutputsAppearTogetherOrNotAtAll) {
    const auto trace = synth_trace("atomic");
    const auto out = tmp("atomic_out");
    const auto dir = tmp("atomic_scores");
    fs::create_directories(dir);
    write(dir / "ok.tsv", "lang\tscore\ndeu_Latn\t0.5\n");
    auto o = analyze_opts(trace, out);
    o.scores = (dir / "ok.tsv").string();
    rs::run_analyze(o);
    const auto before = fs::last_write_time(out / "divergence.csv");
    std::vector<std::string> names;
    for (const auto & e : fs::directory_iterator(out)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names.size(), 10u);

    // a bad shard found while streaming: nothing written
    const auto bad_trace = synth_trace("atomic_nan", 9);
    auto b = analyze_opts(bad_trace, out);
    EXPECT_NE(error_of([&] { rs::run_analyze(b); }).find("not finite"), std::string::npos);
    std::vector<std::string> after;
    for (const auto & e : fs::directory_iterator(out)) after.push_back(e.path().filename().string());
    std::sort(after.begin(), after.end());
    EXPECT_EQ(after, names);  // no temporary, no new file
    EXPECT_EQ(fs::last_write_time(out / "divergence.csv"), before);

    // an output path that cannot be written (summary.json is a directory): every temporary removed
    fs::remove(out / "summary.json");
    fs::create_directories(out / "summary.json");
    auto c = analyze_opts(trace, out);
    EXPECT_NE(error_of([&] { rs::run_analyze(c); }).find("summary.json: is a directory"), std::string::npos);
    for (const auto & e : fs::directory_iterator(out))
        EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
    EXPECT_EQ(fs::last_write_time(out / "divergence.csv"), before);
    fs::remove(out / "summary.json");

    rs::run_analyze(c);  // without --scores: the old correlation.csv is not left beside the new tables
    EXPECT_FALSE(fs::exists(out / "correlation.csv"));
    EXPECT_TRUE(fs::exists(out / "summary.json"));
}

TEST(AnalysisHardening, StrayShardBeyondManifestIsRefused) {
    const auto trace = synth_trace("stray");
    fs::copy_file(trace / rs::shard_file_name(0), trace / rs::shard_file_name(3));
    EXPECT_NE(error_of([&] { rs::run_analyze(analyze_opts(trace, tmp("stray_out"))); }).find("shard-00003"),
              std::string::npos);
}
