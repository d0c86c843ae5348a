// run_sweep (routescope/sweep.h): grid of steering configurations, tuned on dev, reported on test.
#include "routescope/sweep.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "routescope/common.h"
#include "routescope/engine.h"
#include "routescope/evaluate.h"
#include "routescope/file_io.h"
#include "routescope/languages.h"
#include "routescope/model.h"
#include "routescope/steer.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace rs {
namespace {

json read_json(const std::string & path, const char * what) {
    std::ifstream f(path);
    std::error_code ec;
    if (!f || !fs::is_regular_file(path, ec))
        throw Error(fmt::format("{}: {} not found or not a file (check the path)", path, what));
    try {
        return json::parse(f);
    } catch (const json::exception & e) {
        throw Error(fmt::format("{}: {} is not valid JSON: {} (fix or remove it)", path, what,
                                json_error_text(e.what())));
    }
}

// Δ per block from experts.json: "delta", or "deltas"[lang].
std::map<int, std::vector<double>> read_deltas(const json & ex, const std::string & delta_of,
                                               const std::string & path, int n_expert) {
    const json * d = nullptr;
    if (delta_of.empty()) {
        if (ex.contains("delta")) d = &ex["delta"];
    } else if (ex.contains("deltas") && ex["deltas"].contains(delta_of)) {
        d = &ex["deltas"][delta_of];
    }
    if (d == nullptr || !d->is_object())
        throw Error(delta_of.empty()
                        ? fmt::format("{} has no \"delta\" (an `routescope experts` output?)", path)
                        : fmt::format("{} has no \"deltas\" for {} (run experts with --multilingual)", path,
                                      delta_of));
    std::map<int, std::vector<double>> out;
    for (const auto & [layer, values] : d->items()) {
        auto v = values.get<std::vector<double>>();
        if ((int)v.size() != n_expert)
            throw Error(fmt::format("{}: layer {} has {} Δ values, the model has {} experts", path, layer,
                                    v.size(), n_expert));
        out[std::stoi(layer)] = std::move(v);
    }
    return out;
}

std::string num(double x) {
    return fmt::format("{:g}", x);
}

// The unweighted mean accuracy over the non-pivot languages of one eval directory (all languages when only
// the pivot is there), and the number of items scored.
std::pair<double, int64_t> dev_score(const std::string & dir, const std::string & pivot) {
    const auto summary = write_eval_summary(dir);
    double sum = 0, sum_all = 0;
    int n = 0, n_all = 0;
    int64_t items = 0;
    for (const auto & s : summary) {
        items += s.n;
        sum_all += s.accuracy;
        ++n_all;
        if (s.lang == pivot) continue;
        sum += s.accuracy;
        ++n;
    }
    if (n == 0) return {n_all ? sum_all / n_all : 0.0, items};
    return {sum / n, items};
}

}  // namespace

SweepReport run_sweep(const SweepJob & job) {
    const auto t0 = std::chrono::steady_clock::now();
    if (job.out.empty()) throw Error("no output directory (--out)");
    if (job.layer_ranges.empty()) throw Error("no layer ranges (--layers)");
    if (job.taus.empty() || job.methods.empty()) throw Error("empty grid (--tau, --method)");
    if (!(job.dev_fraction > 0 && job.dev_fraction < 1)) throw Error("--dev-fraction must be in (0, 1)");
    for (const auto & m : job.methods)
        if (m != "soft" && m != "force" && m != "suppress")
            throw Error(fmt::format("--method '{}' is not soft, force or suppress", m));
    const bool any_soft = std::find(job.methods.begin(), job.methods.end(), "soft") != job.methods.end();
    if (any_soft && job.lambdas.empty()) throw Error("method soft needs at least one --lambda");

    // ---- items: every language, split into dev and test on the parallel key
    const EvalTask task = parse_eval_task(job.task);
    std::vector<std::string> langs;
    for (const auto & l : job.langs) langs.push_back(flores_code(l).empty() ? l : flores_code(l));
    if (langs.empty()) langs = eval_task_languages(task, job.data);
    std::vector<EvalPrompt> dev, test;
    for (const auto & l : langs) {
        auto p = eval_task_prompts(task, l, job.data, job.n_shot);
        if (job.limit >= 0 && (int64_t)p.size() > job.limit) p.resize((size_t)job.limit);
        for (auto & x : p)
            (in_dev_split(parallel_item_key(x.item_id, x.lang), job.dev_fraction, job.seed) ? dev : test)
                .push_back(std::move(x));
    }
    if (dev.empty() || test.empty())
        throw Error(fmt::format("the split leaves {} dev and {} test items; change --dev-fraction or --limit",
                                dev.size(), test.size()));

    // ---- experts and the grid
    const ModelInfo mi = inspect_model(job.model);
    const std::string sha = model_sha256(job.model);
    const json ex = read_json(job.experts, "experts file");
    const std::string ex_sha = ex.value("model", json::object()).value("sha256", "");
    if (!ex_sha.empty() && ex_sha != sha)
        throw Error(fmt::format("{} was computed from a trace of another model (sha256 {}…)", job.experts,
                                ex_sha.substr(0, 12)));
    const auto deltas = read_deltas(ex, job.delta_of, job.experts, mi.n_expert);

    SweepReport rep;
    rep.n_dev_items = (int64_t)dev.size();
    rep.n_test_items = (int64_t)test.size();
    std::vector<json> specs;  // per config
    for (const auto & r : job.layer_ranges)
        for (const double tau : job.taus)
            for (const auto & m : job.methods)
                for (const double lambda : m == "soft" ? job.lambdas : std::vector<double>{0.0}) {
                    SweepConfig c;
                    c.layers = r, c.tau = tau, c.method = m, c.lambda = lambda;
                    c.name = fmt::format("L{}-{}_tau{}_{}", r.first, r.last, num(tau), m);
                    if (m == "soft") c.name += "_l" + num(lambda);
                    json experts = json::object();
                    std::vector<int> layers;
                    for (const auto & [il, d] : deltas) {
                        if (!r.contains(il)) continue;
                        std::vector<int> set;  // Eq. 3: Δ_e > τ
                        for (int e = 0; e < mi.n_expert; ++e)
                            if (d[(size_t)e] > tau) set.push_back(e);
                        if (set.empty()) continue;
                        experts[std::to_string(il)] = set;
                        layers.push_back(il);
                        c.n_experts += (int)set.size();
                    }
                    c.skipped = layers.empty();
                    json rule = {{"layers", layers}, {"experts", experts}, {"method", m}};
                    if (m == "soft") rule["lambda"] = lambda;
                    specs.push_back({{"seed", job.seed}, {"rules", json::array({rule})}});
                    rep.configs.push_back(std::move(c));
                }

    for (const auto & r : job.layer_ranges)
        if (r.first < 0 || r.last >= mi.n_layer || r.first > r.last)
            throw Error(fmt::format("--layers {}:{} is outside the model's blocks 0..{}", r.first, r.last,
                                    mi.n_layer - 1));
    if (std::all_of(rep.configs.begin(), rep.configs.end(), [](const SweepConfig & c) { return c.skipped; }))
        throw Error(fmt::format(
            "every configuration has an empty expert set (largest Δ in the ranges is below every τ); "
            "lower --tau or widen --layers"));

    // ---- settings guard: a resumed sweep must be the same sweep
    json settings = {{"tool_version", ROUTESCOPE_VERSION},
                     {"model", {{"path", fs::absolute(job.model).string()}, {"sha256", sha}}},
                     {"task", eval_task_name(task)},
                     {"langs", langs},
                     {"shots", job.n_shot},
                     {"limit", job.limit},
                     {"max_new_tokens", job.max_new_tokens},
                     {"experts", fs::absolute(job.experts).string()},
                     {"delta_of", job.delta_of},
                     {"split", {{"dev_fraction", job.dev_fraction}, {"seed", job.seed}}},
                     {"configs", json::array()}};
    for (size_t i = 0; i < rep.configs.size(); ++i) settings["configs"].push_back(specs[i]);
    const std::string settings_path = (fs::path(job.out) / "sweep.json").string();
    std::error_code ec;
    if (fs::exists(settings_path, ec)) {
        json old = read_json(settings_path, "sweep settings");
        old.erase("tool_version");
        json now = settings;
        now.erase("tool_version");
        if (old != now)
            throw Error(fmt::format("{} holds a sweep with other settings; use another --out", job.out));
    }
    write_file_atomic(settings_path, settings.dump(2) + "\n");

    // ---- dev: base, then every configuration (one engine; steering switched per configuration)
    EngineParams ep;
    ep.n_threads = job.n_threads;
    ep.n_batch = job.n_batch;
    ep.n_ctx = job.n_ctx;
    ep.n_seq_max = job.n_seq_max;
    ep.n_gpu_layers = job.n_gpu_layers;
    ep.tap = true;
    Engine engine(job.model, ep);
    auto run = [&](const std::string & dir, const json * spec, std::span<const EvalPrompt> items,
                   const std::string & label) {
        SteerPlan plan;
        if (spec) {
            plan = steer_plan_from_json(*spec, mi, ".");
            write_file_atomic((fs::path(dir) / "steer.json").string(), spec->dump(2) + "\n");
        }
        engine.set_steering(std::move(plan));
        EvalLoopOptions lo;
        lo.max_new_tokens = job.max_new_tokens;
        lo.steered = spec != nullptr;
        lo.progress = job.progress;
        lo.label = label;
        fs::create_directories(dir);
        evaluate_prompts(engine, task, items, dir, lo);
    };
    const fs::path out(job.out);
    run((out / "dev" / "base").string(), nullptr, dev, "sweep dev base");
    rep.base_dev_score = dev_score((out / "dev" / "base").string(), job.pivot).first;
    for (size_t i = 0; i < rep.configs.size(); ++i) {
        auto & c = rep.configs[i];
        if (c.skipped) continue;
        const std::string dir = (out / "dev" / c.name).string();
        run(dir, &specs[i], dev, fmt::format("sweep dev {} ({}/{})", c.name, i + 1, rep.configs.size()));
        std::tie(c.dev_score, c.dev_n) = dev_score(dir, job.pivot);
        if (rep.best < 0 || c.dev_score > rep.configs[(size_t)rep.best].dev_score) rep.best = (int)i;
    }
    std::string csv = "name,layers,tau,method,lambda,n_experts,dev_n,dev_score,dev_delta,status\n";
    for (size_t i = 0; i < rep.configs.size(); ++i) {
        const auto & c = rep.configs[i];
        csv += fmt::format("{},{}:{},{},{},{},{},{},{},{},{}\n", c.name, c.layers.first, c.layers.last,
                           num(c.tau), c.method, c.method == "soft" ? num(c.lambda) : "", c.n_experts,
                           c.dev_n, c.skipped ? "" : fmt::format("{:.6f}", c.dev_score),
                           c.skipped ? "" : fmt::format("{:.6f}", c.dev_score - rep.base_dev_score),
                           c.skipped            ? "no experts"
                           : (int)i == rep.best ? "best"
                                                : "ok");
    }
    write_file_atomic((out / "sweep.csv").string(), csv);
    RS_ASSERT(rep.best >= 0);  // some configuration has experts (checked above)

    // ---- test: base and the chosen configuration, once each
    const json & best = specs[(size_t)rep.best];
    write_file_atomic((out / "best_steer.json").string(), best.dump(2) + "\n");
    run((out / "test" / "base").string(), nullptr, test, "sweep test base");
    run((out / "test" / "best").string(), &best, test, "sweep test " + rep.configs[(size_t)rep.best].name);
    write_eval_summary((out / "test" / "base").string());
    write_eval_summary((out / "test" / "best").string());
    CompareOptions co;
    co.pivot = job.pivot;
    co.low_resource = job.low_resource;
    rep.test = compare_result_dirs((out / "test" / "base").string(), (out / "test" / "best").string(),
                                   eval_task_name(task), co, job.out);
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return rep;
}

}  // namespace rs
