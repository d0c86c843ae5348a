// `routescope experts --method chen|rise|steermoe` end to end on real llama.cpp traces of a generated 8-layer
// model over FLoRes: each method's sets in the experts.json schema, its table, its parameters; `steer`
// takes every method's sets (validate, then a trace recorded under the steering, whose routing obeys it);
// one-line errors for requests a method cannot serve; `--store topk` traces give the same sets.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "routescope/eval_results.h"
#include "routescope/trace.h"
#include "test_util.h"

namespace {

using namespace rs::test;
using json = nlohmann::json;

// 8 MoE layers (RISE zones 3 / 2 / 3), 8 experts, top-2
std::string model8() {
    return tiny_model("olmoe", 8, 8, 2);
}

std::string trace_of(const std::string & name, const std::string & langs, int limit,
                     const std::string & extra = "") {
    static std::set<std::string> done;  // traced by this process
    const fs::path dir = fs::path(testing::TempDir()) / ("rs_em_trace_" + name);
    if (done.insert(name).second) {
        fs::remove_all(dir);
        const auto r =
            run_cli("trace --model " + model8() + " --corpus " + flores_devtest() + " --langs " + langs +
                    " --limit " + std::to_string(limit) + " --shard-seqs 16 --threads 1 --no-progress " +
                    extra + " --out " + dir.string());
        EXPECT_EQ(r.exit_code, 0) << r.err;
    }
    return dir.string();
}

const char * kLangs = "eng_Latn,deu_Latn,fra_Latn,swh_Latn";

std::string header_of(const fs::path & p) {
    const std::string s = slurp(p);
    return s.substr(0, s.find('\n'));
}

size_t n_rows(const fs::path & p) {
    const std::string s = slurp(p);
    return (size_t)std::count(s.begin(), s.end(), '\n') - 1;
}

size_t set_size(const json & set) {
    size_t n = 0;
    for (const auto & [layer, ids] : set.items()) n += ids.size();
    return n;
}

TEST(ExpertsMethodsCli, ChenSharesAndSets) {
    const auto trace = trace_of("base", kLangs, 12);
    const auto dir = temp_dir("em_chen");
    const auto r =
        run_cli("experts " + trace + " --method chen --top 3 --threads 1 --out " + (dir / "c.json").string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = json::parse(slurp(dir / "c.json"));
    EXPECT_EQ(j["method"], "chen");
    EXPECT_EQ(j["params"]["top"], 3);
    EXPECT_EQ(j["params"]["threshold"], 0.4);  // the authors' intervention default
    EXPECT_EQ(j["params"]["langs"].size(), 4u);
    EXPECT_EQ(j["layers"].size(), 8u);
    for (const char * s : {"shared", "eng_Latn", "deu_Latn", "fra_Latn", "swh_Latn"})
        EXPECT_TRUE(j["sets"].contains(s)) << s;
    // shares: per expert they sum to 1 (minus the 1e-10 guard) or are all 0; each language keeps 3 per layer
    for (const auto & layer : j["layers"]) {
        const std::string key = std::to_string(layer.get<int>());
        for (int e = 0; e < 8; ++e) {
            double sum = 0.0;
            for (const auto & [lang, per_layer] : j["shares"].items()) sum += per_layer[key][e].get<double>();
            EXPECT_TRUE(std::fabs(sum - 1.0) < 1e-8 || sum == 0.0) << key << " " << e << " " << sum;
        }
        for (const auto & [lang, per_layer] : j["shares"].items()) {
            int n_pos = 0;
            for (double v : per_layer[key].get<std::vector<double>>()) n_pos += v > 0.0;
            EXPECT_LE(n_pos, 3) << lang;
        }
        // a shared expert: some share > 0, all < θ; its coefficient is the first language's share
        for (int e : j["sets"]["shared"][key].get<std::vector<int>>()) {
            for (const auto & [lang, per_layer] : j["shares"].items())
                EXPECT_LT(per_layer[key][e].get<double>(), 0.4);
            EXPECT_EQ(j["coefficients"][key][std::to_string(e)], j["shares"]["eng_Latn"][key][e]);
        }
        for (int e : j["sets"]["swh_Latn"][key].get<std::vector<int>>())
            EXPECT_GT(j["shares"]["swh_Latn"][key][e].get<double>(), 0.4);
    }
    EXPECT_EQ(header_of(dir / "c.csv"), "layer,expert,lang,freq,share,shared,exclusive");
    EXPECT_EQ(n_rows(dir / "c.csv"), 8u * 8u * 4u);
}

TEST(ExpertsMethodsCli, RiseZonesBudgetAndTable) {
    const auto trace = trace_of("base", kLangs, 12);
    const auto dir = temp_dir("em_rise");
    const auto r = run_cli("experts " + trace + " --method rise --target-lang swh_Latn --threads 1 --out " +
                           (dir / "r.json").string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = json::parse(slurp(dir / "r.json"));
    EXPECT_EQ(j["method"], "rise");
    EXPECT_EQ(j["params"]["budget"], 8);  // default K = experts per layer
    EXPECT_EQ(j["params"]["alpha"], 10.0);
    // L = 8: round(3) = 3 shallow, round(5) = 5 → 2 middle, 3 deep; K = 8: ⌊2.8⌋ = 2, ⌊2⌋ = 2, 4
    EXPECT_EQ(j["zones"]["shallow"].get<std::vector<int>>(), (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(j["zones"]["middle"].get<std::vector<int>>(), (std::vector<int>{3, 4}));
    EXPECT_EQ(j["zones"]["deep"].get<std::vector<int>>(), (std::vector<int>{5, 6, 7}));
    EXPECT_EQ(j["budgets"]["shallow"], 2);
    EXPECT_EQ(j["budgets"]["middle"], 2);
    EXPECT_EQ(j["budgets"]["deep"], 4);
    EXPECT_EQ(set_size(j["sets"]["selected"]), 8u);
    EXPECT_EQ(set_size(j["sets"]["shallow"]), 2u);
    for (const auto & [layer, ids] : j["sets"]["middle"].items())
        EXPECT_TRUE(layer == "3" || layer == "4" || ids.empty());
    EXPECT_EQ(j["experts"].size(), 8u);
    EXPECT_EQ(header_of(dir / "r.csv"), "zone,layer,expert,score,specificity,overlap,freq_target,freq_mean");
    EXPECT_EQ(n_rows(dir / "r.csv"), 8u);
    // a larger budget and other zone shares are taken as given
    ASSERT_EQ(run_cli("experts " + trace +
                      " --method rise --target-lang deu_Latn --budget 20 --middle-budget 0.5 "
                      "--threads 1 --out " +
                      (dir / "r2.json").string())
                  .exit_code,
              0);
    const auto j2 = json::parse(slurp(dir / "r2.json"));
    EXPECT_EQ(j2["budgets"]["shallow"], 7);  // ⌊7⌋
    EXPECT_EQ(j2["budgets"]["middle"], 10);  // ⌊10⌋ of a 16-expert zone
    EXPECT_EQ(j2["budgets"]["deep"], 3);
}

TEST(ExpertsMethodsCli, SteerMoeRiskDifference) {
    const auto trace = trace_of("base", kLangs, 12);
    const auto dir = temp_dir("em_steermoe");
    const auto r = run_cli("experts " + trace +
                           " --method steermoe --pair-a lang=deu_Latn --pair-b lang=eng_Latn --n-activate 4 "
                           "--n-deactivate 3 --threads 1 --out " +
                           (dir / "s.json").string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = json::parse(slurp(dir / "s.json"));
    EXPECT_EQ(j["method"], "steermoe");
    EXPECT_EQ(j["n_pairs"], 12);
    EXPECT_EQ(set_size(j["sets"]["deactivate"]), 3u);
    EXPECT_EQ(set_size(j["sets"]["activate"]) + j["n_dropped_by_cap"].get<size_t>(), 4u);
    for (const auto & [layer, ids] : j["sets"]["activate"].items()) {
        EXPECT_LE(ids.size(), 2u);  // at most top-k activated per layer
        for (int e : ids.get<std::vector<int>>())
            EXPECT_GT(j["risk_difference"][layer][e].get<double>(), 0.0);
    }
    for (const auto & [layer, ids] : j["sets"]["deactivate"].items())
        for (int e : ids.get<std::vector<int>>())
            EXPECT_LT(j["risk_difference"][layer][e].get<double>(), 0.0);
    EXPECT_EQ(header_of(dir / "s.csv"), "layer,expert,count_a,count_b,p_a,p_b,risk_difference,rank,set");
    EXPECT_EQ(n_rows(dir / "s.csv"), 64u);
    // --reverse negates RD
    ASSERT_EQ(
        run_cli("experts " + trace +
                " --method steermoe --pair-a lang=deu_Latn --pair-b lang=eng_Latn --n-deactivate 1 --reverse "
                "--threads 1 --out " +
                (dir / "rev.json").string())
            .exit_code,
        0);
    const auto jr = json::parse(slurp(dir / "rev.json"));
    for (const auto & [layer, v] : j["risk_difference"].items())
        for (size_t e = 0; e < v.size(); ++e)
            EXPECT_EQ(jr["risk_difference"][layer][e].get<double>(), -v[e].get<double>());
}

// Every method's experts.json drives `steer`: validated against the model, then a trace recorded under the
// steering (real inference) whose top-k obeys it — forced experts in every token's top-k, suppressed ones
// in none.
TEST(ExpertsMethodsCli, SteerTakesEveryMethodsSets) {
    const auto trace = trace_of("base", kLangs, 12);
    const auto dir = temp_dir("em_steer");
    const std::string t = trace + " --threads 1 --out ";
    ASSERT_EQ(run_cli("experts " + t + (dir / "delta.json").string() +
                      " --target lang=swh_Latn --baseline lang=eng_Latn --tau 0")
                  .exit_code,
              0);
    ASSERT_EQ(run_cli("experts " + t + (dir / "chen.json").string() + " --method chen").exit_code, 0);
    ASSERT_EQ(run_cli("experts " + t + (dir / "rise.json").string() + " --method rise --target-lang swh_Latn")
                  .exit_code,
              0);
    ASSERT_EQ(run_cli("experts " + t + (dir / "steermoe.json").string() +
                      " --method steermoe --pair-a lang=swh_Latn --pair-b lang=eng_Latn --n-activate 3 "
                      "--n-deactivate 3")
                  .exit_code,
              0);
    EXPECT_EQ(json::parse(slurp(dir / "delta.json"))["method"], "delta");
    struct Case {
        std::string file, force, suppress;
    };
    const std::vector<Case> cases{{"delta", "", "target"},
                                  {"chen", "", "swh_Latn"},
                                  {"rise", "", "selected"},
                                  {"steermoe", "activate", "deactivate"}};
    for (const auto & c : cases) {
        json spec = {{"experts_file", c.file + ".json"}, {"rules", json::array()}};
        if (!c.force.empty())
            spec["rules"].push_back({{"layers", "all"}, {"set", c.force}, {"method", "force"}});
        spec["rules"].push_back({{"layers", "all"}, {"set", c.suppress}, {"method", "suppress"}});
        const auto sp = dir / (c.file + "_spec.json");
        std::ofstream(sp) << spec.dump();
        const auto v = run_cli("steer validate " + sp.string() + " --model " + model8());
        ASSERT_EQ(v.exit_code, 0) << c.file << ": " << v.err;
        const auto out = dir / ("t_" + c.file);
        const auto r = run_cli("trace --model " + model8() + " --corpus " + flores_devtest() +
                               " --langs swh_Latn --limit 2 --threads 1 --no-progress --steer " +
                               sp.string() + " --out " + out.string());
        ASSERT_EQ(r.exit_code, 0) << c.file << ": " << r.err;
        const auto m = rs::read_manifest(out.string());
        const auto sets = json::parse(slurp(dir / (c.file + ".json")))["sets"];
        const auto s = rs::read_shard(out.string(), m, 0);
        ASSERT_GT(s.n_tok(), 0);
        for (size_t slot = 0; slot < m.moe_layers.size(); ++slot) {
            const std::string key = std::to_string(m.moe_layers[slot]);
            const auto sup = sets[c.suppress].value(key, std::vector<int>{});
            const auto frc =
                c.force.empty() ? std::vector<int>{} : sets[c.force].value(key, std::vector<int>{});
            if ((int)sup.size() > 8 - 2)
                continue;  // fewer than top-k left: suppress cannot keep them all out
            for (int64_t tok = 0; tok < s.n_tok(); ++tok) {
                const auto ids = s.ids(tok, (int)slot);
                for (int e : sup)
                    EXPECT_EQ(std::find(ids.begin(), ids.end(), e), ids.end()) << c.file << " slot " << slot;
                for (int e : frc)
                    EXPECT_NE(std::find(ids.begin(), ids.end(), e), ids.end()) << c.file << " slot " << slot;
            }
        }
    }
    // the authors' own rules on their sets: chen with the file's coefficients, steermoe (de)activation
    const std::vector<std::pair<std::string, json>> authors{
        {"chen", {{"layers", "all"}, {"set", "shared"}, {"method", "chen"}, {"lambda", 0.5}}},
        {"steermoe",
         {{"layers", "all"}, {"set", "activate"}, {"deactivate_set", "deactivate"}, {"method", "steermoe"}}}};
    for (const auto & [file, rule] : authors) {
        const auto sp = dir / (file + "_authors.json");
        std::ofstream(sp) << json{{"experts_file", file + ".json"}, {"rules", {rule}}}.dump();
        const auto out = dir / ("a_" + file);
        const auto r = run_cli("trace --model " + model8() + " --corpus " + flores_devtest() +
                               " --langs swh_Latn --limit 2 --threads 1 --no-progress --steer " +
                               sp.string() + " --out " + out.string());
        ASSERT_EQ(r.exit_code, 0) << file << ": " << r.err;
        const auto m = rs::read_manifest(out.string());
        const auto ops = m.options["steer"]["ops"];
        ASSERT_FALSE(ops.empty()) << file;
        EXPECT_EQ(ops[0]["method"], file);
        if (file == "chen") {
            EXPECT_TRUE(ops[0].contains("coefficients"));
            continue;
        }
        // qwen3moe routes by softmax without a bias: max + 0.01 is selected, min − 0.01 never
        const auto sets = json::parse(slurp(dir / "steermoe.json"))["sets"];
        const auto s = rs::read_shard(out.string(), m, 0);
        for (size_t slot = 0; slot < m.moe_layers.size(); ++slot) {
            const std::string key = std::to_string(m.moe_layers[slot]);
            for (int64_t tok = 0; tok < s.n_tok(); ++tok) {
                const auto ids = s.ids(tok, (int)slot);
                for (int e : sets["activate"].value(key, std::vector<int>{}))
                    EXPECT_NE(std::find(ids.begin(), ids.end(), e), ids.end()) << "slot " << slot;
                for (int e : sets["deactivate"].value(key, std::vector<int>{}))
                    EXPECT_EQ(std::find(ids.begin(), ids.end(), e), ids.end()) << "slot " << slot;
            }
        }
    }
}

TEST(ExpertsMethodsCli, ImpossibleRequestsGiveOneLineErrors) {
    const auto trace = trace_of("base", kLangs, 12);
    const auto one = trace_of("one", "eng_Latn", 4);
    const auto dir = temp_dir("em_errors");
    const std::string out = " --threads 1 --out " + (dir / "x.json").string();
    expect_clean_error(run_cli("experts " + one + " --method chen" + out), "at least two languages");
    expect_clean_error(run_cli("experts " + one + " --method rise --target-lang eng_Latn" + out),
                       "at least two languages");
    expect_clean_error(run_cli("experts " + trace + " --method rise" + out), "--target-lang");
    expect_clean_error(run_cli("experts " + trace + " --method rise --target-lang zul_Latn" + out),
                       "is absent");
    expect_clean_error(
        run_cli("experts " + trace + " --method rise --target-lang swh_Latn --budget 65" + out), "exceeds");
    expect_clean_error(run_cli("experts " + trace + " --method chen --langs eng_Latn,xxx_Latn" + out),
                       "is absent");
    expect_clean_error(run_cli("experts " + trace + " --method chen --target lang=eng_Latn" + out),
                       "belong to --method delta");
    expect_clean_error(
        run_cli("experts " + trace +
                " --target-lang swh_Latn --target lang=deu_Latn --baseline lang=eng_Latn" + out),
        "--target-lang belongs to --method rise");
    expect_clean_error(run_cli("experts " + trace + " --method chen --n-activate 3" + out), "belongs to");
    expect_clean_error(run_cli("experts " + trace + " --method steermoe --pair-a lang=deu_Latn" + out),
                       "--pair-b");
    expect_clean_error(run_cli("experts " + trace +
                               " --method steermoe --pair-a lang=deu_Latn --pair-b '*' "
                               "--n-activate 1" +
                               out),
                       "both");
    expect_clean_error(run_cli("experts " + trace +
                               " --method steermoe --pair-a lang=deu_Latn --pair-b lang=eng_Latn" + out),
                       "--n-activate");
    expect_clean_error(run_cli("experts " + trace +
                               " --method steermoe --pair-a lang=deu_Latn --pair-b "
                               "lang=eng_Latn --n-activate 1000" +
                               out),
                       "lower them");
    expect_clean_error(run_cli("experts " + trace +
                               " --method steermoe --pair-a lang=deu_Latn --pair-b "
                               "lang=zul_Latn --n-activate 1" +
                               out),
                       "no parallel group");
    EXPECT_FALSE(fs::exists(dir / "x.json"));
}

// Every method reads only the top-k ids: a `--store topk` trace gives the same tables.
TEST(ExpertsMethodsCli, StoreTopkTraceGivesTheSameSets) {
    const auto full = trace_of("base", kLangs, 12);
    const auto topk = trace_of("topk", kLangs, 12, "--store topk");
    const auto dir = temp_dir("em_topk");
    for (const std::string & args :
         {std::string(" --method chen"), std::string(" --method rise --target-lang fra_Latn"),
          std::string(" --method steermoe --pair-a lang=fra_Latn --pair-b lang=eng_Latn "
                      "--n-activate 2 --n-deactivate 2")}) {
        ASSERT_EQ(
            run_cli("experts " + full + args + " --threads 1 --out " + (dir / "f.json").string()).exit_code,
            0)
            << args;
        ASSERT_EQ(
            run_cli("experts " + topk + args + " --threads 2 --out " + (dir / "t.json").string()).exit_code,
            0)
            << args;
        EXPECT_EQ(slurp(dir / "f.csv"), slurp(dir / "t.csv")) << args;
        EXPECT_EQ(json::parse(slurp(dir / "f.json"))["sets"], json::parse(slurp(dir / "t.json"))["sets"])
            << args;
    }
}

}  // namespace

namespace {

// Every method end to end on the bundled (trained) model: traced, selected, and the selection steers an
// evaluation with the method's own rule (delta: soft on its target set, Bandarkar et al.; chen: z + λ·s·|z|
// on the shared experts; rise: soft on the selected subnetwork; steermoe: its (de)activation). The
// steered log-likelihoods must differ from the base run's for the rules that move the selection.
TEST(ExpertsMethodsCli, BundledModelEveryMethodTracedSelectedSteeredEvaluated) {
    const auto dir = temp_dir("em_bundled");
    const std::string model = std::string(RS_SOURCE_DIR) + "/models/tiny-polyglot-moe.gguf";
    const auto tr =
        run_cli("trace --model " + model + " --corpus " + flores_devtest() +
                " --langs eng_Latn,deu_Latn,swh_Latn --limit 12 --threads 2 --no-progress --out " +
                (dir / "t").string());
    ASSERT_EQ(tr.exit_code, 0) << tr.err;
    const std::string eval = "eval --model " + model +
                             " --task belebele --langs eng_Latn --limit 4 --threads 2 --no-progress --out ";
    ASSERT_EQ(run_cli(eval + (dir / "base").string()).exit_code, 0);
    auto logliks = [](const fs::path & details) {  // the scored log-likelihoods, in file order
        std::vector<json> out;
        std::ifstream f(details);
        for (std::string line; std::getline(f, line);)
            if (!line.empty()) out.push_back(json::parse(line)["loglik"]);
        return out;
    };
    const auto base = logliks(dir / "base" / "details.jsonl");
    ASSERT_EQ(base.size(), 4u);
    struct Case {
        std::string method, args;
        json rule;
        bool moves;  // the rule changes which experts are selected
    };
    const std::vector<Case> cases{
        {"delta",
         "--target lang=swh_Latn --baseline lang=eng_Latn",
         {{"layers", "all"}, {"set", "target"}, {"method", "soft"}, {"lambda", 2.0}},
         true},
        {"chen", "", {{"layers", "all"}, {"set", "shared"}, {"method", "chen"}, {"lambda", 0.03}}, false},
        {"rise",
         "--target-lang swh_Latn",
         {{"layers", "all"}, {"set", "selected"}, {"method", "soft"}, {"lambda", 2.0}},
         true},
        {"steermoe",
         "--pair-a lang=swh_Latn --pair-b lang=eng_Latn --n-activate 2 --n-deactivate 2",
         {{"layers", "all"}, {"set", "activate"}, {"deactivate_set", "deactivate"}, {"method", "steermoe"}},
         true}};
    for (const auto & c : cases) {
        const auto ex = run_cli("experts " + (dir / "t").string() + " --method " + c.method + " " + c.args +
                                " --out " + (dir / (c.method + ".json")).string());
        ASSERT_EQ(ex.exit_code, 0) << c.method << ": " << ex.err;
        const auto spec = dir / (c.method + "_spec.json");
        std::ofstream(spec) << json{{"experts_file", c.method + ".json"}, {"rules", {c.rule}}}.dump();
        const auto out = dir / ("steered_" + c.method);
        const auto r = run_cli(eval + out.string() + " --steer " + spec.string());
        ASSERT_EQ(r.exit_code, 0) << c.method << ": " << r.err;
        const auto rows = rs::read_results((out / "results.csv").string());
        ASSERT_EQ(rows.size(), 4u) << c.method;
        for (const auto & row : rows) EXPECT_TRUE(row.steered) << c.method;
        if (c.moves) {
            EXPECT_NE(logliks(out / "details.jsonl"), base) << c.method;
        }
    }
}

}  // namespace
