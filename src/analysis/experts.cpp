// `experts`: expert specialisation (Bandarkar et al. 2025, §5.2). Δ_e of Eq. 3 between the sequences a
// target selector and a baseline selector pick (sequence-averaged a_i/L_i, ActivationAccumulator), the
// specialised set {e : Δ_e > τ} per layer, or with --multilingual Δ of every non-pivot language vs the pivot,
// the multilingual set (their union) and the overlaps of the per-language sets (specialisation.h).
// Output format: analysis.h. Streams shard by shard; per-sequence frequencies are computed in parallel and
// added in sequence order (thread-count independent).
#include <algorithm>
#include <chrono>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "analysis_internal.h"
#include "routescope/common.h"

namespace rs {

using json = nlohmann::json;

namespace {

json layered(const std::vector<int> & slots, const std::vector<int> & moe_layers, auto && value_of) {
    json j = json::object();
    for (size_t i = 0; i < slots.size(); ++i) j[std::to_string(moe_layers[(size_t)slots[i]])] = value_of(i);
    return j;
}

json model_json(const analysis::TraceSet & ts) {
    const auto & m0 = ts.first();
    return {{"arch", m0.arch},
            {"name", ts.model},
            {"sha256", m0.model_sha256},
            {"n_layer", m0.n_layer},
            {"moe_layers", m0.moe_layers},
            {"n_expert", ts.n_expert},
            {"top_k", ts.top_k}};
}

std::string csv_path_of(const ExpertsOptions & opt) {
    std::string p = opt.out_csv;
    if (p.empty()) p = std::filesystem::path(opt.out).replace_extension(".csv").string();
    if (p == opt.out) p += ".csv";
    return p;
}

// chen, rise, steermoe (experts_methods.cpp): the same file pair, written together
ExpertsReport run_other_method(const ExpertsOptions & opt, const analysis::TraceSet & ts,
                               const std::vector<int> & slots, std::chrono::steady_clock::time_point t0) {
    if (opt.multilingual || !opt.target.empty() || !opt.baseline.empty())
        throw Error(
            fmt::format("--target, --baseline and --multilingual belong to --method delta, not {} (see "
                        "`routescope experts --help`)",
                        opt.method));
    json j;
    j["method"] = opt.method;
    j["model"] = model_json(ts);
    j["layers"] = json::array();
    for (int sl : slots) j["layers"].push_back(ts.moe_layers[(size_t)sl]);
    ExpertsReport rep;
    rep.n_layers = (int)slots.size();
    const std::string csv = analysis::run_experts_method(opt, ts, slots, j, rep);
    OutputFiles files;
    files.add(opt.out, j.dump(1) + "\n");
    files.add(csv_path_of(opt), csv);
    files.commit();
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return rep;
}

}  // namespace

ExpertsReport run_experts(const ExpertsOptions & opt) {
    const auto t0 = std::chrono::steady_clock::now();
    if (opt.out.empty()) throw Error("no output file (--out)");
    if (opt.method != "delta" && opt.method != "chen" && opt.method != "rise" && opt.method != "steermoe")
        throw Error(fmt::format("--method {} is not delta, chen, rise or steermoe", opt.method));
    // an option of another method would be ignored silently: refuse it
    auto belongs = [&](bool given, const char * flag, std::initializer_list<const char *> methods) {
        if (!given || std::find(methods.begin(), methods.end(), opt.method) != methods.end()) return;
        throw Error(fmt::format("{} belongs to --method {}, not {} (see `routescope experts --help`)", flag,
                                fmt::join(methods, " or "), opt.method));
    };
    belongs(!opt.langs.empty(), "--langs", {"chen", "rise"});
    belongs(!opt.target_lang.empty(), "--target-lang", {"rise"});
    belongs(!opt.pair_a.empty() || !opt.pair_b.empty(), "--pair-a/--pair-b", {"steermoe"});
    belongs(opt.n_activate != 0 || opt.n_deactivate != 0 || opt.reverse,
            "--n-activate/--n-deactivate/--reverse", {"steermoe"});
    // Δ (Eq. 3) is a difference of activation frequencies, in [−1, 1]: τ outside [−1, 1) (or NaN) selects
    // every or no expert by construction
    if (!(opt.tau >= -1.0 && opt.tau < 1.0))
        throw Error(
            fmt::format("--tau {} must be a number in [-1, 1) (Δ is a difference of frequencies)", opt.tau));
    const analysis::TraceSet ts = analysis::load_trace_set(opt.traces);
    const auto slots = analysis::select_slots(ts, opt.layers, "--layers");
    const size_t n_sl = slots.size();
    const int n_expert = ts.n_expert;
    if (opt.method != "delta") return run_other_method(opt, ts, slots, t0);

    // Groups of sequences: [0] target, [1] baseline; with --multilingual one per language (pivot = baseline).
    std::vector<std::string> names;
    std::vector<SeqSelector> sel;
    int baseline = 1;
    if (opt.multilingual) {
        for (const auto & m : ts.manifests)
            for (const auto & l : m.langs)
                if (std::find(names.begin(), names.end(), l) == names.end()) names.push_back(l);
        const auto it = std::find(names.begin(), names.end(), opt.pivot);
        if (it == names.end())
            throw Error("pivot language " + opt.pivot + " is absent from the trace" +
                        (opt.traces.size() > 1 ? "s" : "") + " (languages: " + analysis::join(names) + ")");
        baseline = (int)(it - names.begin());
        for (const auto & l : names) sel.push_back(SeqSelector::parse("lang=" + l));
    } else {
        if (opt.target.empty() || opt.baseline.empty())
            throw Error("give --target and --baseline selectors (or --multilingual)");
        names = {"target", "baseline"};
        sel = {SeqSelector::parse(opt.target), SeqSelector::parse(opt.baseline)};
    }
    const size_t n_grp = names.size();
    std::vector<std::vector<ActivationAccumulator>> acc(
        n_grp, std::vector<ActivationAccumulator>(n_sl, ActivationAccumulator(n_expert)));
    std::vector<int64_t> n_seq(n_grp, 0);

    for (size_t ti = 0; ti < ts.dirs.size(); ++ti) {
        const auto & m = ts.manifests[ti];
        // only the sequence tensors and topk are read: Δ needs no probabilities
        analysis::for_each_raw_shard(ts.dirs[ti], m, opt.n_threads, false, [&](int64_t, const RawShard & s) {
            // which groups each sequence belongs to (read_shard_raw has checked lang/domain against the
            // manifest: checked_sequences)
            std::vector<std::vector<int>> member(s.seqs.size());
            for (size_t i = 0; i < s.seqs.size(); ++i) {
                const auto & q = s.seqs[i];
                for (size_t g = 0; g < n_grp; ++g)
                    if (sel[g].matches(m.langs[(size_t)q.lang], m.domains[(size_t)q.domain], (int)ti))
                        member[i].push_back((int)g);
            }
            // a_i/L_i per selected layer (§5.2), empty for unselected or empty sequences
            const auto freq = parallel_map<std::vector<std::vector<double>>>(
                (int64_t)s.seqs.size(), opt.n_threads, [&](int64_t i) {
                    const auto & q = s.seqs[(size_t)i];
                    std::vector<std::vector<double>> f;
                    if (member[(size_t)i].empty() || q.n_tok == 0) return f;
                    std::vector<int64_t> counts(n_sl * (size_t)n_expert);
                    activation_counts_raw(s.topk, q.tok_begin, q.n_tok, ts.n_moe, ts.top_k, n_expert, slots,
                                          counts);
                    for (size_t l = 0; l < n_sl; ++l) {  // a_i / L_i (activation_frequency)
                        f.emplace_back((size_t)n_expert);
                        for (int e = 0; e < n_expert; ++e)
                            f.back()[(size_t)e] =
                                (double)counts[l * (size_t)n_expert + (size_t)e] / (double)q.n_tok;
                    }
                    return f;
                });
            for (size_t i = 0; i < s.seqs.size(); ++i) {
                if (freq[i].empty()) continue;
                for (const int g : member[i]) {
                    ++n_seq[(size_t)g];
                    for (size_t l = 0; l < n_sl; ++l) acc[(size_t)g][l].add(freq[i][l]);
                }
            }
        });
    }
    for (size_t g = 0; g < n_grp; ++g)
        if (n_seq[g] == 0)
            throw Error(opt.multilingual ? "language " + names[g] + " has no sequence with tokens"
                                         : fmt::format("--{} '{}' selects no sequence with tokens", names[g],
                                                       g == 0 ? opt.target : opt.baseline));

    json j;
    j["method"] = "delta";
    j["source"] = "Bandarkar et al. 2025, Eq. 3 and Section 5.2";
    j["params"] = {{"tau", opt.tau}};
    j["model"] = model_json(ts);
    j["tau"] = opt.tau;
    j["layers"] = json::array();
    for (int sl : slots) j["layers"].push_back(ts.moe_layers[(size_t)sl]);
    ExpertsReport rep;
    rep.n_layers = (int)n_sl;
    analysis::Csv csv({"layer", "expert", "freq_target", "freq_baseline", "delta", "selected", "target"});
    // Δ (Eq. 3) of group g vs the baseline group, per selected layer; rows added to the CSV
    auto delta_of = [&](size_t g, const std::string & set_name, std::vector<std::vector<int>> & sets) {
        std::vector<std::vector<double>> d(n_sl);
        sets.assign(n_sl, {});
        for (size_t l = 0; l < n_sl; ++l) {
            const auto ft = acc[g][l].mean(), fb = acc[(size_t)baseline][l].mean();
            d[l] = activation_delta(ft, fb);
            sets[l] = specialised_experts(d[l], opt.tau);
            for (int e = 0; e < n_expert; ++e) {
                csv.field(ts.moe_layers[(size_t)slots[l]]).field(e).field(ft[(size_t)e]).field(fb[(size_t)e]);
                csv.field(d[l][(size_t)e]).field((int64_t)(d[l][(size_t)e] > opt.tau)).field(set_name);
                csv.end_row();
            }
        }
        return d;
    };
    auto layered_sets = [&](const std::vector<std::vector<int>> & s) {
        return layered(slots, ts.moe_layers, [&](size_t i) { return json(s[i]); });
    };
    auto layered_delta = [&](const std::vector<std::vector<double>> & d) {
        return layered(slots, ts.moe_layers, [&](size_t i) { return json(d[i]); });
    };

    if (!opt.multilingual) {
        j["target"] = opt.target;
        j["baseline"] = opt.baseline;
        j["n_seq"] = {{"target", n_seq[0]}, {"baseline", n_seq[1]}};
        std::vector<std::vector<int>> sets;
        const auto d = delta_of(0, "target", sets);
        j["sets"] = {{"target", layered_sets(sets)}};
        j["delta"] = layered_delta(d);
        for (const auto & s : sets) rep.n_selected += (int64_t)s.size();
        rep.n_seq_target = n_seq[0], rep.n_seq_baseline = n_seq[1];
    } else {
        j["target"] = "multilingual";
        j["baseline"] = "lang=" + opt.pivot;
        j["n_seq"] = json::object();
        for (size_t g = 0; g < n_grp; ++g) j["n_seq"][names[g]] = n_seq[g];
        std::vector<std::string> langs;
        std::vector<std::vector<std::vector<int>>> per_lang;
        std::vector<std::vector<double>> all_deltas(
            n_sl);  // [slot][n_lang × E], input of multilingual_experts
        json deltas = json::object(), sets = json::object();
        for (size_t g = 0; g < n_grp; ++g) {
            if ((int)g == baseline) continue;
            std::vector<std::vector<int>> s;
            const auto d = delta_of(g, names[g], s);
            langs.push_back(names[g]);
            per_lang.push_back(s);
            deltas[names[g]] = layered_delta(d);
            sets[names[g]] = layered_sets(s);
            for (size_t l = 0; l < n_sl; ++l)
                all_deltas[l].insert(all_deltas[l].end(), d[l].begin(), d[l].end());
        }
        if (langs.empty()) throw Error("--multilingual needs a language besides the pivot " + opt.pivot);
        std::vector<std::vector<int>> multi(n_sl);
        std::vector<std::vector<double>> dmax(n_sl, std::vector<double>((size_t)n_expert, -1.0));
        for (size_t l = 0; l < n_sl; ++l) {
            multi[l] = multilingual_experts(all_deltas[l], n_expert, opt.tau);
            for (size_t r = 0; r < langs.size(); ++r)
                for (int e = 0; e < n_expert; ++e)
                    dmax[l][(size_t)e] =
                        std::max(dmax[l][(size_t)e], all_deltas[l][r * (size_t)n_expert + (size_t)e]);
            rep.n_selected += (int64_t)multi[l].size();
        }
        sets["multilingual"] = layered_sets(multi);
        j["sets"] = sets;
        j["delta"] = layered_delta(dmax);
        j["deltas"] = deltas;
        json ov = json::array();
        for (size_t a = 0; a < langs.size(); ++a)
            for (size_t b = a + 1; b < langs.size(); ++b) {
                const auto o = layered_overlap(per_lang[a], per_lang[b]).total;
                ov.push_back({{"a", langs[a]},
                              {"b", langs[b]},
                              {"n_a", o.n_a},
                              {"n_b", o.n_b},
                              {"n_intersection", o.n_intersection},
                              {"jaccard", o.jaccard ? json(*o.jaccard) : json(nullptr)}});
            }
        j["overlaps"] = ov;
        rep.n_seq_target = 0;
        for (size_t g = 0; g < n_grp; ++g)
            if ((int)g != baseline) rep.n_seq_target += n_seq[g];
        rep.n_seq_baseline = n_seq[(size_t)baseline];
    }
    const std::string csv_path = csv_path_of(opt);
    OutputFiles files;  // the JSON and its CSV appear together or not at all
    files.add(opt.out, j.dump(1) + "\n");
    files.add(csv_path, csv.str());
    files.commit();
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return rep;
}

}  // namespace rs
