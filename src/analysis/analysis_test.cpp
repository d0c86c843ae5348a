// rs_analysis on synthetic traces (written with rs::write_shard, no model): selectors and layer ranges,
// a language that is an exact copy of the pivot has divergence 0, byte-identical outputs for any thread
// count, cross-trace pairing and its errors, experts Δ and sets.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "routescope/analysis.h"
#include "routescope/common.h"
#include "routescope/stats.h"
#include "routescope/trace.h"

namespace {

namespace fs = std::filesystem;

struct SynthSeq {
    std::string lang, domain;
    int64_t group = -1;
    int n_tok = 0;
    uint64_t seed = 0;  // equal seeds ⇒ identical routing
};

// A trace of n_moe layers, E experts, top-k K: p peaked on a few experts per sequence, top-k from p.
void write_synth_trace(const fs::path & dir, const std::vector<SynthSeq> & seqs,
                       const std::string & sha = "abc", int n_moe = 3, int e = 8, int k = 2,
                       int per_shard = 5) {
    fs::create_directories(dir);
    rs::TraceManifest m;
    m.model_sha256 = sha, m.arch = "olmoe", m.model_name = "synth", m.n_layer = n_moe + 1;
    for (int l = 0; l < n_moe; ++l) m.moe_layers.push_back(l + 1);  // block 0 dense
    m.n_expert = e, m.top_k = k, m.gating = "softmax", m.corpus = "synthetic";
    for (const auto & s : seqs) {
        if (std::find(m.langs.begin(), m.langs.end(), s.lang) == m.langs.end()) m.langs.push_back(s.lang);
        if (std::find(m.domains.begin(), m.domains.end(), s.domain) == m.domains.end())
            m.domains.push_back(s.domain);
    }
    m.n_sequences = (int64_t)seqs.size(), m.seqs_per_shard = per_shard, m.probs_dtype = "f32";
    rs::write_manifest(dir.string(), m);
    for (int64_t sh = 0; sh * per_shard < (int64_t)seqs.size(); ++sh) {
        rs::TraceShard s;
        s.n_moe = n_moe, s.n_expert = e, s.top_k = k;
        for (int64_t i = sh * per_shard; i < std::min<int64_t>((sh + 1) * per_shard, (int64_t)seqs.size());
             ++i) {
            const auto & q = seqs[(size_t)i];
            rs::TraceSeq ts{
                .index = i,
                .group = q.group,
                .lang = (int32_t)(std::find(m.langs.begin(), m.langs.end(), q.lang) - m.langs.begin()),
                .domain =
                    (int32_t)(std::find(m.domains.begin(), m.domains.end(), q.domain) - m.domains.begin()),
                .id = "s" + std::to_string(i),
                .tok_begin = s.n_tok(),
                .n_tok = q.n_tok};
            s.seqs.push_back(ts);
            rs::SplitMix64 rng(q.seed);
            for (int t = 0; t < q.n_tok; ++t) {
                s.tokens.push_back(t);
                for (int l = 0; l < n_moe; ++l) {
                    std::vector<float> p((size_t)e);
                    float sum = 0;
                    for (auto & v : p)
                        sum += v = (float)(1 + rs::uniform_below(rng, 100)) *
                                   (rs::uniform_below(rng, 3) == 0 ? 20.f : 1.f);
                    for (auto & v : p) v /= sum;
                    s.probs.insert(s.probs.end(), p.begin(), p.end());
                    std::vector<int16_t> ids((size_t)e);
                    for (int x = 0; x < e; ++x) ids[(size_t)x] = (int16_t)x;
                    std::stable_sort(ids.begin(), ids.end(),
                                     [&](int16_t a, int16_t b) { return p[(size_t)a] > p[(size_t)b]; });
                    s.topk.insert(s.topk.end(), ids.begin(), ids.begin() + k);
                }
            }
        }
        rs::write_shard(dir.string(), sh, m, s);
    }
}

// Group-major parallel corpus: n_group groups × langs; lang "cpy" copies the routing of "eng_Latn".
std::vector<SynthSeq> parallel_seqs(const std::vector<std::string> & langs, int n_group, int first_group = 0,
                                    const std::string & domain = "flores") {
    std::vector<SynthSeq> out;
    for (int g = first_group; g < first_group + n_group; ++g)
        for (size_t li = 0; li < langs.size(); ++li) {
            const bool copy = langs[li] == "cpy";
            const uint64_t lang_seed = std::hash<std::string>{}(copy ? std::string("eng_Latn") : langs[li]);
            out.push_back({langs[li], domain, g, 3 + g % 7, rs::derive_seed(lang_seed, (uint64_t)g, 1)});
        }
    return out;
}

std::string slurp(const fs::path & p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

fs::path tmp(const std::string & name) {
    const fs::path d = fs::path(testing::TempDir()) / ("rs_analysis_" + name);
    fs::remove_all(d);
    return d;
}

TEST(Analysis, SelectorsAndRanges) {
    const auto s = rs::SeqSelector::parse("lang=deu_Latn|fra_Latn,domain=!gsm8k");
    EXPECT_TRUE(s.matches("deu_Latn", "flores", 0));
    EXPECT_FALSE(s.matches("deu_Latn", "gsm8k", 0));
    EXPECT_FALSE(s.matches("eng_Latn", "flores", 0));
    EXPECT_TRUE(rs::SeqSelector::parse("*").matches("x", "y", 3));
    EXPECT_TRUE(rs::SeqSelector::parse("trace=1").matches("x", "y", 1));
    EXPECT_FALSE(rs::SeqSelector::parse("lang=!*").matches("x", "y", 1));
    EXPECT_THROW(rs::SeqSelector::parse("language=x"), rs::Error);
    EXPECT_THROW(rs::SeqSelector::parse("deu_Latn"), rs::Error);
    EXPECT_EQ(rs::parse_layer_range("3:7").first, 3);
    EXPECT_EQ(rs::parse_layer_range("5").last, 5);
    EXPECT_THROW(rs::parse_layer_range("7:3"), rs::Error);
    EXPECT_THROW(rs::parse_layer_range("a:b"), rs::Error);
}

TEST(Analysis, CopyOfPivotHasZeroDivergenceAndThreadsDoNotMatter) {
    const auto dir = tmp("copy");
    write_synth_trace(dir / "t", parallel_seqs({"eng_Latn", "deu_Latn", "cpy", "fra_Latn"}, 12));
    rs::AnalyzeOptions opt;
    opt.traces = {(dir / "t").string()};
    opt.bootstrap_resamples = 100;
    opt.n_threads = 1;
    opt.out_dir = (dir / "a1").string();
    const auto rep = rs::run_analyze(opt);
    EXPECT_EQ(rep.n_sequences, 48);
    EXPECT_EQ(rep.n_layers, 3);
    opt.n_threads = 3;
    opt.out_dir = (dir / "a3").string();
    rs::run_analyze(opt);
    for (const char * f :
         {"divergence.csv", "entropy.csv", "consistency.csv", "pairwise.csv", "isolation.csv",
          "experts_rise.csv", "domains.csv", "clusters.json", "summary.json"})
        EXPECT_EQ(slurp(dir / "a1" / f), slurp(dir / "a3" / f)) << f;

    std::istringstream div(slurp(dir / "a1" / "divergence.csv"));
    std::string line;
    int n_copy = 0, n_deu = 0;
    while (std::getline(div, line)) {
        if (line.find(",cpy,") != std::string::npos) {
            EXPECT_NE(line.find(",0,0,0,12,0"), std::string::npos) << line;  // div, ci_lo, ci_hi exactly 0
            ++n_copy;
        }
        if (line.find(",deu_Latn,") != std::string::npos) {
            EXPECT_EQ(line.find(",0,0,0,"), std::string::npos) << line;
            ++n_deu;
        }
    }
    EXPECT_EQ(n_copy, 3);
    EXPECT_EQ(n_deu, 3);
    const auto sum = nlohmann::json::parse(slurp(dir / "a1" / "summary.json"));
    EXPECT_EQ(sum["languages"]["cpy"]["divergence"].get<double>(), 0.0);
    EXPECT_GT(sum["languages"]["deu_Latn"]["divergence"].get<double>(), 0.0);
}

TEST(Analysis, CrossTracePairingAndErrors) {
    const auto dir = tmp("cross");
    write_synth_trace(dir / "a", parallel_seqs({"eng_Latn", "deu_Latn"}, 6));
    write_synth_trace(dir / "b", parallel_seqs({"fra_Latn"}, 6));
    write_synth_trace(dir / "c", parallel_seqs({"fra_Latn"}, 8));  // groups 6, 7 have no pivot
    write_synth_trace(dir / "d", parallel_seqs({"eng_Latn"}, 4), "other-model");
    rs::AnalyzeOptions opt;
    opt.bootstrap_resamples = 50;
    opt.out_dir = (dir / "out").string();
    opt.traces = {(dir / "b").string(), (dir / "a").string()};  // pivot provider given second
    const auto rep = rs::run_analyze(opt);
    EXPECT_EQ(rep.n_sequences, 18);
    const std::string div = slurp(dir / "out" / "divergence.csv");
    EXPECT_NE(div.find((dir / "b").string() + ",fra_Latn,1,"), std::string::npos) << div;

    auto error_of = [&](std::vector<std::string> traces, const std::string & pivot = "eng_Latn") {
        opt.traces = traces;
        opt.pivot = pivot;
        try {
            rs::run_analyze(opt);
        } catch (const rs::Error & e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_NE(error_of({(dir / "a").string(), (dir / "c").string()}).find("mismatched parallel groups"),
              std::string::npos);
    EXPECT_NE(error_of({(dir / "a").string(), (dir / "d").string()}).find("different models"),
              std::string::npos);
    EXPECT_NE(error_of({(dir / "a").string()}, "swh_Latn").find("swh_Latn"), std::string::npos);
    EXPECT_NE(error_of({(dir / "missing").string()}).find("not found"), std::string::npos);
}

TEST(Analysis, UnpairedDomainsGiveDomainDivergence) {
    const auto dir = tmp("domains");
    auto seqs = parallel_seqs({"eng_Latn", "deu_Latn"}, 4);
    for (int i = 0; i < 5; ++i) seqs.push_back({"eng_Latn", "gsm8k", -1, 4 + i, 100u + (uint64_t)i});
    write_synth_trace(dir / "t", seqs);
    rs::AnalyzeOptions opt;
    opt.traces = {(dir / "t").string()};
    opt.bootstrap_resamples = 20;
    opt.out_dir = (dir / "a").string();
    const auto rep = rs::run_analyze(opt);
    EXPECT_EQ(rep.n_sequences, 13);
    const std::string d = slurp(dir / "a" / "domains.csv");
    EXPECT_EQ(std::count(d.begin(), d.end(), '\n'), 4) << d;  // header + 3 layers
    EXPECT_NE(d.find("synth,1,flores,gsm8k,0."), std::string::npos) << d;
    // unpaired sequences do not enter the divergence from the pivot
    EXPECT_NE(slurp(dir / "a" / "divergence.csv").find(",eng_Latn,1,0,0,0,4,0"), std::string::npos);
}

TEST(Analysis, ExpertsDeltaAndSets) {
    const auto dir = tmp("experts");
    write_synth_trace(dir / "t", parallel_seqs({"eng_Latn", "deu_Latn", "fra_Latn"}, 10));
    rs::ExpertsOptions opt;
    opt.traces = {(dir / "t").string()};
    opt.target = "lang=deu_Latn";
    opt.baseline = "lang=eng_Latn";
    opt.tau = 0.0;
    opt.out = (dir / "e.json").string();
    const auto rep = rs::run_experts(opt);
    EXPECT_EQ(rep.n_seq_target, 10);
    EXPECT_GT(rep.n_selected, 0);
    const auto j = nlohmann::json::parse(slurp(dir / "e.json"));
    for (const char * k : {"model", "tau", "target", "baseline", "sets", "delta"})
        EXPECT_TRUE(j.contains(k)) << k;
    EXPECT_EQ(j["delta"].size(), 3u);
    for (const auto & [layer, d] : j["delta"].items()) {
        ASSERT_EQ(d.size(), 8u);
        for (double v : d.get<std::vector<double>>()) EXPECT_TRUE(v >= -1 && v <= 1);
    }
    EXPECT_TRUE(fs::exists(dir / "e.csv"));

    opt.layers = rs::parse_layer_range("2:3");
    opt.multilingual = true;
    rs::run_experts(opt);
    const auto m = nlohmann::json::parse(slurp(dir / "e.json"));
    EXPECT_EQ(m["layers"], nlohmann::json({2, 3}));
    EXPECT_TRUE(m["sets"].contains("multilingual") && m["sets"].contains("deu_Latn"));
    EXPECT_EQ(m["overlaps"].size(), 1u);

    opt.multilingual = false;
    opt.target = "lang=xxx";
    EXPECT_THROW(rs::run_experts(opt), rs::Error);
}

}  // namespace
