// `routescope analyze` and `routescope experts` end to end on real llama.cpp traces of generated models over
// FLoRes: every output file with its documented columns, zero divergence of the pivot (and of a copy of it)
// from itself, determinism over seeds and thread counts, one-line errors for bad input, expert sets.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "routescope/trace.h"
#include "test_util.h"

namespace {

using namespace rs::test;
using json = nlohmann::json;

const char * kLangs = "eng_Latn,deu_Latn,fra_Latn,swh_Latn";

// Traces an OLMoE-style tiny model over FLoRes once per test binary; returns the trace dir.
std::string trace_of(const std::string & name, const std::string & langs, int limit,
                     const std::string & arch = "olmoe", const std::string & corpus = "",
                     const std::string & extra = "") {
    static std::set<std::string> done;  // traced by this process (never reuse a stale trace of an old binary)
    const fs::path dir = fs::path(testing::TempDir()) / ("rs_an_trace_" + name);
    if (done.insert(name).second) {
        fs::remove_all(dir);
        const auto r =
            run_cli("trace --model " + tiny_model(arch) + " --corpus " +
                    (corpus.empty() ? flores_devtest() : corpus) +
                    (langs.empty() ? "" : " --langs " + langs) + " --limit " + std::to_string(limit) +
                    " --shard-seqs 16 --threads 1 --no-progress " + extra + " --out " + dir.string());
        EXPECT_EQ(r.exit_code, 0) << r.err;
    }
    return dir.string();
}

std::vector<std::vector<std::string>> read_csv(const fs::path & p) {
    std::vector<std::vector<std::string>> rows;
    std::istringstream ss(slurp(p));
    for (std::string line; std::getline(ss, line);) {
        std::vector<std::string> f;
        size_t b = 0;
        while (true) {
            const size_t e = line.find(',', b);
            f.push_back(line.substr(b, e == std::string::npos ? std::string::npos : e - b));
            if (e == std::string::npos) break;
            b = e + 1;
        }
        rows.push_back(f);
    }
    return rows;
}

std::vector<std::string> split(const std::string & s) {
    std::vector<std::string> out;
    std::istringstream ss(s);
    for (std::string w; std::getline(ss, w, ',');) out.push_back(w);
    return out;
}

TEST(AnalyzeCli, WritesEveryTableWithItsColumns) {
    const auto trace = trace_of("base", kLangs, 20);
    const auto dir = temp_dir("an_tables");
    std::ofstream(dir / "scores.tsv") << "lang\tscore\ndeu_Latn\t0.8\nfra_Latn\t0.85\nswh_Latn\t0.4\n";
    const auto r =
        run_cli("analyze " + trace + " --pivot eng_Latn --scores " + (dir / "scores.tsv").string() +
                " --threads 1 --bootstrap 200 --out " + (dir / "a").string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::map<std::string, std::string> headers = {
        {"divergence.csv", "model,trace,lang,layer,div,ci_lo,ci_hi,n_pairs,n_undefined"},
        {"entropy.csv", "model,lang,layer,entropy"},
        {"consistency.csv", "model,lang,layer,consistency,n_seq,n_undefined"},
        {"pairwise.csv", "model,layer,lang_a,lang_b,div,n_pairs,n_undefined"},
        {"correlation.csv", "layer,pearson_r,pearson_p,spearman_rho,spearman_p,n"},
        {"isolation.csv", "model,layer,lang_a,lang_b,isolation"},
        {"experts_rise.csv", "model,layer,expert,overlap,top_lang,specificity"},
        {"domains.csv", "model,layer,domain_a,domain_b,div"}};
    const auto m = rs::read_manifest(trace);
    const std::set<std::string> layers = [&] {
        std::set<std::string> s;
        for (int l : m.moe_layers) s.insert(std::to_string(l));
        return s;
    }();
    for (const auto & [file, header] : headers) {
        const auto rows = read_csv(dir / "a" / file);
        ASSERT_FALSE(rows.empty()) << file;
        EXPECT_EQ(rows[0], split(header)) << file;
        const auto & h = rows[0];
        const auto lcol = std::find(h.begin(), h.end(), "layer") - h.begin();
        for (size_t i = 1; i < rows.size(); ++i) {
            ASSERT_EQ(rows[i].size(), h.size()) << file << " row " << i;
            EXPECT_TRUE(layers.count(rows[i][(size_t)lcol])) << file << ": layer " << rows[i][(size_t)lcol];
            for (const auto & f : rows[i])
                EXPECT_TRUE(f.find("nan") == std::string::npos && f.find("inf") == std::string::npos) << file;
        }
    }
    const auto div = read_csv(dir / "a" / "divergence.csv");
    EXPECT_EQ(div.size(), 1 + 4 * m.moe_layers.size());
    int n_pivot = 0;
    for (const auto & row : div)
        if (row[2] == "eng_Latn") {  // the pivot compared with itself: exactly 0 wherever defined
            EXPECT_TRUE(row[4] == "0" || row[4].empty()) << row[4];
            EXPECT_EQ(row[7], "20");
            ++n_pivot;
        }
    EXPECT_EQ(n_pivot, (int)m.moe_layers.size());
    for (const auto & row : read_csv(dir / "a" / "pairwise.csv"))
        if (row[2] == row[3] && row[0] != "model") {
            EXPECT_TRUE(row[4] == "0" || row[4].empty()) << row[4];
        }
    EXPECT_EQ(read_csv(dir / "a" / "correlation.csv").size(), 1 + m.moe_layers.size());

    const auto sum = json::parse(slurp(dir / "a" / "summary.json"));
    for (const char * k : {"model", "traces", "pivot", "middle_layers", "languages", "n_undefined_pairs"})
        EXPECT_TRUE(sum.contains(k)) << k;
    EXPECT_EQ(sum["languages"].size(), 4u);
    for (const auto & [lang, v] : sum["languages"].items())
        for (const char * k : {"divergence", "entropy", "consistency", "n_undefined_pairs"})
            EXPECT_TRUE(v.contains(k)) << lang << " " << k;
    const auto cl = json::parse(slurp(dir / "a" / "clusters.json"));
    ASSERT_EQ(cl["layers"].size(), m.moe_layers.size());
    EXPECT_EQ(cl["layers"][0]["merges"].size(), 3u);
    EXPECT_EQ(cl["layers"][0]["leaf_order"].size(), 4u);
}

TEST(AnalyzeCli, DeterministicOverRunsAndThreads) {
    const auto trace = trace_of("base", kLangs, 20);
    const auto dir = temp_dir("an_determinism");
    const std::string args = "analyze " + trace + " --seed 7 --bootstrap 200 --out ";
    ASSERT_EQ(run_cli(args + (dir / "a").string() + " --threads 1").exit_code, 0);
    ASSERT_EQ(run_cli(args + (dir / "b").string() + " --threads 1").exit_code, 0);
    ASSERT_EQ(run_cli(args + (dir / "c").string() + " --threads 2").exit_code, 0);
    ASSERT_EQ(
        run_cli("analyze " + trace + " --seed 8 --bootstrap 200 --threads 1 --out " + (dir / "d").string())
            .exit_code,
        0);
    for (const char * f :
         {"divergence.csv", "entropy.csv", "consistency.csv", "pairwise.csv", "isolation.csv",
          "experts_rise.csv", "domains.csv", "clusters.json", "summary.json"}) {
        const auto a = slurp(dir / "a" / f);
        EXPECT_FALSE(a.empty()) << f;
        EXPECT_EQ(a, slurp(dir / "b" / f)) << f;
        EXPECT_EQ(a, slurp(dir / "c" / f)) << f << " differs between 1 and 2 threads";
    }
    // another seed changes the random parts (consistency pairs, bootstrap) only
    EXPECT_NE(slurp(dir / "a" / "consistency.csv"), slurp(dir / "d" / "consistency.csv"));
    EXPECT_EQ(slurp(dir / "a" / "entropy.csv"), slurp(dir / "d" / "entropy.csv"));
}

// Two "languages" with identical texts are routed identically: divergence exactly 0 in every layer. One
// sequence per llama_decode: in a shared batch llama.cpp's results differ in the last bits between batch
// columns (measured: D_H-JS ≈ 1e-11), which is the engine's numerics, not the analysis.
TEST(AnalyzeCli, IdenticalTextsHaveZeroDivergence) {
    const auto dir = temp_dir("an_identical");
    std::ifstream eng(data_dir() + "/flores200/devtest/eng_Latn.devtest");
    std::ofstream tsv(dir / "twins.tsv");
    tsv << "id\tlang\tgroup\tdomain\ttext\n";
    std::string line;
    for (int g = 0; g < 6 && std::getline(eng, line); ++g)
        for (const char * lang : {"eng_Latn", "twn_Latn"})
            tsv << lang << g << "\t" << lang << "\t" << g << "\tflores\t" << line << "\n";
    tsv.close();
    const auto trace =
        trace_of("twins", "", 6, "olmoe", "tsv:" + (dir / "twins.tsv").string(), "--batch-seqs 1");
    ASSERT_EQ(run_cli("analyze " + trace + " --threads 1 --out " + (dir / "a").string()).exit_code, 0);
    int n = 0;
    for (const auto & row : read_csv(dir / "a" / "divergence.csv"))
        if (row[2] == "twn_Latn") {
            EXPECT_EQ(row[4], "0") << "layer " << row[3];
            EXPECT_EQ(row[8], "0");
            ++n;
        }
    EXPECT_GT(n, 0);
}

TEST(AnalyzeCli, BadInputGivesOneLineErrors) {
    const auto base = trace_of("base", kLangs, 20);
    const auto dir = temp_dir("an_bad");
    const std::string out = " --threads 1 --out " + (dir / "o").string();
    expect_clean_error(run_cli("analyze " + (dir / "missing").string() + out), "not found");
    expect_clean_error(run_cli("analyze " + base + " --pivot hin_Deva" + out), "hin_Deva");
    const auto other = trace_of("other_model", "eng_Latn,deu_Latn", 2, "qwen3moe");
    expect_clean_error(run_cli("analyze " + base + " " + other + out), "different models");
    // Italian groups 0..21 paired with the pivot of the base trace, which only has groups 0..19
    const auto ita = trace_of("ita", "ita_Latn", 22);
    expect_clean_error(run_cli("analyze " + base + " " + ita + out), "mismatched parallel groups");
    expect_clean_error(run_cli("analyze " + base + " --middle 3:1" + out), "layer range");
    expect_clean_error(run_cli("experts " + base + " --target lang=xxx_Latn --baseline lang=eng_Latn --out " +
                               (dir / "e.json").string()),
                       "selects no sequence");
    expect_clean_error(run_cli("experts " + base + " --target language=deu --baseline lang=eng_Latn --out " +
                               (dir / "e.json").string()),
                       "selector");
}

TEST(ExpertsCli, DeltaSetsAndLayers) {
    const auto trace = trace_of("base", kLangs, 20);
    const auto dir = temp_dir("an_experts");
    const auto m = rs::read_manifest(trace);
    const auto r = run_cli("experts " + trace +
                           " --target lang=deu_Latn --baseline lang=eng_Latn --tau 0 "
                           "--threads 1 --out " +
                           (dir / "e.json").string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = json::parse(slurp(dir / "e.json"));
    for (const char * k : {"model", "tau", "target", "baseline", "sets", "delta"})
        ASSERT_TRUE(j.contains(k)) << k;
    for (const char * k : {"arch", "sha256", "n_layer", "moe_layers", "n_expert", "top_k"})
        EXPECT_TRUE(j["model"].contains(k)) << k;
    EXPECT_EQ(j["model"]["moe_layers"].get<std::vector<int>>(), m.moe_layers);
    EXPECT_EQ(j["target"], "lang=deu_Latn");
    ASSERT_EQ(j["delta"].size(), m.moe_layers.size());
    size_t n_sel = 0;
    for (const auto & [layer, d] : j["delta"].items()) {
        ASSERT_EQ(d.size(), (size_t)m.n_expert);
        for (double v : d.get<std::vector<double>>()) EXPECT_TRUE(v >= -1.0 && v <= 1.0) << v;
        n_sel += j["sets"]["target"][layer].size();
    }
    EXPECT_GT(n_sel, 0u);
    const auto csv = read_csv(dir / "e.csv");
    EXPECT_EQ(csv[0], split("layer,expert,freq_target,freq_baseline,delta,selected,target"));
    EXPECT_EQ(csv.size(), 1 + m.moe_layers.size() * (size_t)m.n_expert);

    const std::string range = std::to_string(m.moe_layers[1]) + ":" + std::to_string(m.moe_layers[2]);
    ASSERT_EQ(run_cli("experts " + trace + " --multilingual --pivot eng_Latn --tau 0.05 --layers " + range +
                      " --threads 1 --out " + (dir / "m.json").string())
                  .exit_code,
              0);
    const auto mj = json::parse(slurp(dir / "m.json"));
    EXPECT_EQ(mj["layers"].get<std::vector<int>>(), (std::vector<int>{m.moe_layers[1], m.moe_layers[2]}));
    EXPECT_EQ(mj["delta"].size(), 2u);
    for (const char * s : {"multilingual", "deu_Latn", "fra_Latn", "swh_Latn"})
        EXPECT_TRUE(mj["sets"].contains(s)) << s;
    EXPECT_EQ(mj["overlaps"].size(), 3u);
}

}  // namespace

namespace {

// `trace --store topk` on a real model: the same ids as the full trace, the selected experts' p only; analyze
// writes consistency/isolation (equal to the full trace's) and says what it skipped; experts is unchanged;
// the same trace given twice is refused.
TEST(AnalyzeCli, StoreTopkTraceGivesIdTablesAndRefusesTheRest) {
    const auto full = trace_of("base", kLangs, 20);
    const auto topk = trace_of("topk", kLangs, 20, "olmoe", "", "--store topk");
    const auto dir = temp_dir("an_topk");
    const auto mt = rs::read_manifest(topk);
    ASSERT_EQ(mt.store, "topk");
    const auto mf = rs::read_manifest(full);
    const auto sf = rs::read_shard(full, mf, 0), st = rs::read_shard(topk, mt, 0);
    EXPECT_EQ(st.topk, sf.topk);  // recording is deterministic: same selections
    EXPECT_TRUE(st.probs.empty());
    ASSERT_EQ(st.topk_probs.size(), sf.topk.size());
    const auto info = run_cli("trace-info " + topk);
    EXPECT_NE(info.out.find("topk_probs"), std::string::npos) << info.out;

    const std::string common = " --middle " + std::to_string(mf.moe_layers.front()) + ":" +
                               std::to_string(mf.moe_layers.back()) + " --threads 1 --out ";
    ASSERT_EQ(run_cli("analyze " + full + common + (dir / "af").string()).exit_code, 0);
    const auto r = run_cli("analyze " + topk + common + (dir / "at").string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("--store topk"), std::string::npos) << r.out;
    for (const char * f : {"consistency.csv", "isolation.csv", "experts_rise.csv"})
        EXPECT_EQ(slurp(dir / "at" / f), slurp(dir / "af" / f)) << f;
    for (const char * f : {"divergence.csv", "entropy.csv", "pairwise.csv", "clusters.json", "domains.csv"})
        EXPECT_FALSE(fs::exists(dir / "at" / f)) << f;
    EXPECT_EQ(json::parse(slurp(dir / "at" / "summary.json"))["store"], "topk");

    for (const auto & [t, name] : {std::pair{full, "ef"}, std::pair{topk, "et"}})
        ASSERT_EQ(run_cli("experts " + t + " --multilingual --tau 0.05 --threads 1 --out " +
                          (dir / (std::string(name) + ".json")).string())
                      .exit_code,
                  0);
    EXPECT_EQ(slurp(dir / "ef.csv"), slurp(dir / "et.csv"));
    expect_clean_error(run_cli("analyze " + full + " " + full + common + (dir / "a2").string()),
                       "given twice");
}

}  // namespace
