// `experts --method chen|rise|steermoe`: the expert sets of Chen et al. 2026 (chen.h), RISE (Zheng et al.
// 2026, rise.h) and SteerMoE (Fayyaz et al. 2025, steermoe.h) from token-pooled top-k counts, written in the
// experts.json schema of the Δ method (analysis.h) so that `steer` takes them by set name. Every method
// needs only the top-k ids of the trace, so `trace --store topk` recordings work unchanged.
// Counting: per group of sequences (a language, or a side of the SteerMoE pair) and per selected layer,
// Σ (tokens whose top-k contains e) and Σ tokens over the group's sequences; integer sums, so the result
// does not depend on the thread count.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "analysis_internal.h"
#include "routescope/chen.h"
#include "routescope/common.h"
#include "routescope/rise.h"
#include "routescope/steermoe.h"

namespace rs::analysis {

using json = nlohmann::json;

namespace {

// Token-pooled counts of one group of sequences over the selected slots.
struct GroupCounts {
    std::vector<int64_t> count;  // [slot × E]
    int64_t n_tok = 0, n_seq = 0;
    std::vector<double> freq(size_t slot, int n_expert) const {  // f(e) = count / tokens (0 without tokens)
        std::vector<double> f((size_t)n_expert, 0.0);
        for (int e = 0; e < n_expert; ++e)
            if (n_tok > 0) f[(size_t)e] = (double)count[slot * (size_t)n_expert + (size_t)e] / (double)n_tok;
        return f;
    }
};

// Streams every trace and adds each sequence's counts to the group `group_of` returns (-1: none). The
// per-sequence counts are computed in parallel and added in sequence order.
void count_groups(const TraceSet & ts, const std::vector<int> & slots, int n_threads,
                  const std::function<int(size_t trace, const TraceManifest &, const TraceSeq &)> & group_of,
                  std::vector<GroupCounts> & groups) {
    const size_t n_sl = slots.size();
    const int n_expert = ts.n_expert;
    for (auto & g : groups) g.count.assign(n_sl * (size_t)n_expert, 0);
    for (size_t ti = 0; ti < ts.dirs.size(); ++ti) {
        const auto & m = ts.manifests[ti];
        for_each_raw_shard(ts.dirs[ti], m, n_threads, false, [&](int64_t, const RawShard & s) {
            std::vector<int> gi(s.seqs.size(), -1);  // lang/domain in range: read_shard_raw checked them
            for (size_t i = 0; i < s.seqs.size(); ++i) {
                const auto & q = s.seqs[i];
                if (q.n_tok > 0) gi[i] = group_of(ti, m, q);
            }
            const auto counts =
                parallel_map<std::vector<int64_t>>((int64_t)s.seqs.size(), n_threads, [&](int64_t i) {
                    std::vector<int64_t> c;
                    if (gi[(size_t)i] < 0) return c;
                    const auto & q = s.seqs[(size_t)i];
                    c.assign(n_sl * (size_t)n_expert, 0);
                    activation_counts_raw(s.topk, q.tok_begin, q.n_tok, ts.n_moe, ts.top_k, n_expert, slots,
                                          c);
                    return c;
                });
            for (size_t i = 0; i < s.seqs.size(); ++i) {
                if (gi[i] < 0) continue;
                auto & g = groups[(size_t)gi[i]];
                for (size_t k = 0; k < g.count.size(); ++k) g.count[k] += counts[i][k];
                g.n_tok += s.seqs[i].n_tok;
                ++g.n_seq;
            }
        });
    }
}

// The languages of the traces in order of first appearance, or `wanted` (each must be present).
std::vector<std::string> languages(const TraceSet & ts, const std::vector<std::string> & wanted) {
    std::vector<std::string> all;
    for (const auto & m : ts.manifests)
        for (const auto & l : m.langs)
            if (std::find(all.begin(), all.end(), l) == all.end()) all.push_back(l);
    if (wanted.empty()) return all;
    for (const auto & l : wanted)
        if (std::find(all.begin(), all.end(), l) == all.end())
            throw Error(fmt::format("{}: language {} is absent (languages: {}; fix --langs)", ts.dirs.front(),
                                    l, join(all)));
    if (std::set<std::string>(wanted.begin(), wanted.end()).size() != wanted.size())
        throw Error(fmt::format("{}: --langs names a language twice (give each once)", ts.dirs.front()));
    return wanted;
}

std::vector<GroupCounts> count_languages(const TraceSet & ts, const std::vector<int> & slots,
                                         const std::vector<std::string> & langs, int n_threads) {
    std::vector<GroupCounts> g(langs.size());
    count_groups(
        ts, slots, n_threads,
        [&](size_t, const TraceManifest & m, const TraceSeq & q) {
            const auto it = std::find(langs.begin(), langs.end(), m.langs[(size_t)q.lang]);
            return it == langs.end() ? -1 : (int)(it - langs.begin());
        },
        g);
    for (size_t i = 0; i < langs.size(); ++i)
        if (g[i].n_tok == 0)
            throw Error(fmt::format("{}: language {} has no sequence with tokens (drop it from --langs)",
                                    ts.dirs.front(), langs[i]));
    return g;
}

// {"<block>": value_of(slot)} over the selected slots
json by_layer(const TraceSet & ts, const std::vector<int> & slots, auto && value_of) {
    json j = json::object();
    for (size_t i = 0; i < slots.size(); ++i)
        j[std::to_string(ts.moe_layers[(size_t)slots[i]])] = value_of(i);
    return j;
}

// --- Chen et al. 2026 -------------------------------------------------------------------------------------
void chen(const ExpertsOptions & opt, const TraceSet & ts, const std::vector<int> & slots, json & j,
          Csv & csv, ExpertsReport & rep) {
    const auto langs = languages(ts, opt.langs);
    if (langs.size() < 2)
        throw Error(fmt::format(
            "{}: method chen needs at least two languages, the trace{} ha{} {} (trace more "
            "languages, or use --method delta)",
            ts.dirs.front(), ts.dirs.size() > 1 ? "s" : "", ts.dirs.size() > 1 ? "ve" : "s", join(langs)));
    if (opt.chen_top < 1) throw Error(fmt::format("--top {} must be at least 1", opt.chen_top));
    if (!(opt.chen_threshold > 0.0 && opt.chen_threshold <= 1.0))
        throw Error(
            fmt::format("--threshold {} must be in (0, 1] (shares lie in [0, 1])", opt.chen_threshold));
    const auto g = count_languages(ts, slots, langs, opt.n_threads);
    const int n_lang = (int)langs.size(), n_expert = ts.n_expert;
    std::vector<std::vector<int>> shared(slots.size());
    std::vector<std::vector<std::vector<int>>> excl(langs.size(),
                                                    std::vector<std::vector<int>>(slots.size()));
    std::vector<std::vector<double>> shares(slots.size());
    for (size_t l = 0; l < slots.size(); ++l) {
        std::vector<double> f;
        for (const auto & gc : g) {
            const auto fr = gc.freq(l, n_expert);
            f.insert(f.end(), fr.begin(), fr.end());
        }
        shares[l] = chen_shares(f, n_lang, n_expert, opt.chen_top);
        shared[l] = chen_shared_experts(shares[l], n_lang, n_expert, opt.chen_threshold);
        for (int li = 0; li < n_lang; ++li) {
            const int t[] = {li};
            excl[(size_t)li][l] = chen_exclusive_experts(shares[l], n_lang, n_expert, t, opt.chen_threshold);
        }
        for (int e = 0; e < n_expert; ++e)
            for (int li = 0; li < n_lang; ++li) {
                const bool is_shared = std::binary_search(shared[l].begin(), shared[l].end(), e);
                const auto & x = excl[(size_t)li][l];
                csv.field(ts.moe_layers[(size_t)slots[l]]).field(e).field(langs[(size_t)li]);
                csv.field(f[(size_t)li * n_expert + e]).field(shares[l][(size_t)li * n_expert + e]);
                csv.field((int64_t)is_shared).field((int64_t)std::binary_search(x.begin(), x.end(), e));
                csv.end_row();
            }
        rep.n_selected += (int64_t)shared[l].size();
    }
    j["source"] =
        "Chen et al. 2026; github.com/conctsai/Multilingualism-in-Mixture-of-Experts-LLMs @ a3be2b66, "
        "intervention/vllm_intervention_flores.py";
    j["params"] = {{"top", opt.chen_top}, {"threshold", opt.chen_threshold}, {"langs", langs}};
    json sets = json::object(), sh = json::object(), n_seq = json::object(), n_tok = json::object();
    sets["shared"] = by_layer(ts, slots, [&](size_t l) { return json(shared[l]); });
    for (int li = 0; li < n_lang; ++li) {
        sets[langs[(size_t)li]] = by_layer(ts, slots, [&](size_t l) { return json(excl[(size_t)li][l]); });
        sh[langs[(size_t)li]] = by_layer(ts, slots, [&](size_t l) {
            return json(std::vector<double>(shares[l].begin() + (ptrdiff_t)li * n_expert,
                                            shares[l].begin() + (ptrdiff_t)(li + 1) * n_expert));
        });
        n_seq[langs[(size_t)li]] = g[(size_t)li].n_seq;
        n_tok[langs[(size_t)li]] = g[(size_t)li].n_tok;
    }
    j["sets"] = sets;
    j["shares"] = sh;
    // routing-guided steering's s_e (steer/vllm_steer_polymath.py get_target_shared_experts): the first
    // language's share of each shared expert
    j["coefficients"] = by_layer(ts, slots, [&](size_t l) {
        json c = json::object();
        for (int e : shared[l]) c[std::to_string(e)] = shares[l][(size_t)e];
        return c;
    });
    j["n_seq"] = n_seq;
    j["n_tok"] = n_tok;
    for (const auto & x : g) rep.n_seq_target += x.n_seq;
}

// --- RISE (Zheng et al. 2026) -----------------------------------------------------------------------------
void rise(const ExpertsOptions & opt, const TraceSet & ts, const std::vector<int> & slots, json & j,
          Csv & csv, ExpertsReport & rep) {
    if (opt.target_lang.empty())
        throw Error("method rise needs --target-lang (the language whose subnetwork is selected)");
    auto langs = languages(ts, opt.langs);
    const auto it = std::find(langs.begin(), langs.end(), opt.target_lang);
    if (it == langs.end())
        throw Error(
            fmt::format("{}: target language {} is absent (languages: {}; fix --target-lang or --langs)",
                        ts.dirs.front(), opt.target_lang, join(langs)));
    if (langs.size() < 2)
        throw Error(
            fmt::format("{}: method rise needs at least two languages (specificity is relative to the "
                        "mean over languages), the traces have {} (trace a reference language too)",
                        ts.dirs.front(), join(langs)));
    const int target = (int)(it - langs.begin());
    RiseOptions ro;
    ro.budget = opt.rise_budget > 0 ? opt.rise_budget : ts.n_expert;
    ro.alpha = opt.rise_alpha;
    ro.shallow_ratio = opt.rise_shallow_ratio;
    ro.middle_ratio = opt.rise_middle_ratio;
    ro.shallow_budget = opt.rise_shallow_budget;
    ro.middle_budget = opt.rise_middle_budget;
    for (const auto & [name, v] : {std::pair{"--shallow-ratio", ro.shallow_ratio},
                                   {"--middle-ratio", ro.middle_ratio},
                                   {"--shallow-budget", ro.shallow_budget},
                                   {"--middle-budget", ro.middle_budget}})
        if (!(v >= 0.0 && v <= 1.0)) throw Error(fmt::format("{} {} must lie in [0, 1]", name, v));
    if (ro.shallow_ratio + ro.middle_ratio > 1.0 || ro.shallow_budget + ro.middle_budget > 1.0)
        throw Error("the shallow and middle shares may not exceed 1 together (the deep zone takes the rest)");
    const int64_t pool = (int64_t)slots.size() * ts.n_expert;
    if (ro.budget > pool)
        throw Error(fmt::format("--budget {} exceeds the {} experts of the {} layers selected (lower it)",
                                ro.budget, pool, slots.size()));
    const auto g = count_languages(ts, slots, langs, opt.n_threads);
    const int n_lang = (int)langs.size(), n_expert = ts.n_expert;
    std::vector<std::vector<double>> a(slots.size());
    for (size_t l = 0; l < slots.size(); ++l)
        for (const auto & gc : g) {
            const auto fr = gc.freq(l, n_expert);
            a[l].insert(a[l].end(), fr.begin(), fr.end());
        }
    const RiseSelection sel = rise_select(a, n_lang, n_expert, target, ro);
    std::array<std::vector<std::vector<int>>, 3> zone_sets;
    for (auto & z : zone_sets) z.assign(slots.size(), {});
    std::vector<std::vector<int>> all(slots.size());
    json experts = json::array();
    for (const auto & x : sel.experts) {
        zone_sets[(size_t)x.zone][(size_t)x.layer].push_back(x.expert);
        all[(size_t)x.layer].push_back(x.expert);
        const auto mean = rise_mean_frequency(a[(size_t)x.layer], n_lang, n_expert);
        const int block = ts.moe_layers[(size_t)slots[(size_t)x.layer]];
        const bool mid = x.zone == RiseZone::middle;
        csv.field(std::string(rise_zone_name(x.zone))).field(block).field(x.expert).field(x.score);
        csv.field(mid ? std::optional<double>{} : std::optional<double>{x.raw});
        csv.field(mid ? std::optional<double>{x.raw} : std::optional<double>{});
        csv.field(a[(size_t)x.layer][(size_t)target * n_expert + x.expert]).field(mean[(size_t)x.expert]);
        csv.end_row();
        experts.push_back({{"zone", rise_zone_name(x.zone)},
                           {"layer", block},
                           {"expert", x.expert},
                           {"score", x.score},
                           {mid ? "overlap" : "specificity", x.raw}});
    }
    rep.n_selected = (int64_t)sel.experts.size();
    j["source"] =
        "Zheng et al. 2026 (RISE), arXiv:2604.03592; github.com/init-neok/rise @ 9d7cb274, "
        "rise/expert_selector.py";
    j["params"] = {{"target_lang", opt.target_lang},
                   {"langs", langs},
                   {"budget", ro.budget},
                   {"alpha", ro.alpha},
                   {"shallow_ratio", ro.shallow_ratio},
                   {"middle_ratio", ro.middle_ratio},
                   {"shallow_budget", ro.shallow_budget},
                   {"middle_budget", ro.middle_budget}};
    json zones = json::object();
    const std::array<std::pair<int, int>, 3> range{std::pair{0, sel.bounds[0]},
                                                   std::pair{sel.bounds[0], sel.bounds[1]},
                                                   std::pair{sel.bounds[1], (int)slots.size()}};
    json sets = json::object(), budgets = json::object();
    for (int z = 0; z < 3; ++z) {
        json blocks = json::array();
        for (int l = range[(size_t)z].first; l < range[(size_t)z].second; ++l)
            blocks.push_back(ts.moe_layers[(size_t)slots[(size_t)l]]);
        const char * name = rise_zone_name((RiseZone)z);
        zones[name] = blocks;
        budgets[name] = sel.budgets[(size_t)z];
        sets[name] = by_layer(ts, slots, [&](size_t l) { return json(zone_sets[(size_t)z][l]); });
    }
    sets["selected"] = by_layer(ts, slots, [&](size_t l) { return json(all[l]); });
    j["zones"] = zones;
    j["budgets"] = budgets;
    j["sets"] = sets;
    j["experts"] = experts;
    json n_seq = json::object(), n_tok = json::object();
    for (size_t li = 0; li < langs.size(); ++li)
        n_seq[langs[li]] = g[li].n_seq, n_tok[langs[li]] = g[li].n_tok;
    j["n_seq"] = n_seq;
    j["n_tok"] = n_tok;
    rep.n_seq_target = g[(size_t)target].n_seq;
    for (size_t li = 0; li < langs.size(); ++li)
        if ((int)li != target) rep.n_seq_baseline += g[li].n_seq;
}

// --- SteerMoE (Fayyaz et al. 2025) ------------------------------------------------------------------------
void steermoe(const ExpertsOptions & opt, const TraceSet & ts, const std::vector<int> & slots, json & j,
              Csv & csv, ExpertsReport & rep) {
    if (opt.pair_a.empty() || opt.pair_b.empty())
        throw Error(
            "method steermoe needs --pair-a and --pair-b (the two behaviours, e.g. lang=deu_Latn and "
            "lang=eng_Latn over the same parallel groups)");
    if (opt.n_activate < 0 || opt.n_deactivate < 0 || opt.n_activate + opt.n_deactivate == 0)
        throw Error(
            "method steermoe needs --n-activate and/or --n-deactivate > 0 (how many experts to steer)");
    const SeqSelector sa = SeqSelector::parse(opt.pair_a), sb = SeqSelector::parse(opt.pair_b);
    // one bucket per (side, domain, parallel group): only groups both sides have are counted (paired data)
    std::map<std::tuple<int, std::string, int64_t>, int> bucket;
    std::vector<GroupCounts> g;
    bool both = false;
    count_groups(
        ts, slots, opt.n_threads,
        [&](size_t ti, const TraceManifest & m, const TraceSeq & q) {
            const auto & lang = m.langs[(size_t)q.lang];
            const auto & dom = m.domains[(size_t)q.domain];
            const bool in_a = sa.matches(lang, dom, (int)ti), in_b = sb.matches(lang, dom, (int)ti);
            if (in_a && in_b) both = true;
            if ((!in_a && !in_b) || q.group < 0) return -1;
            const auto key = std::tuple{in_a ? 0 : 1, dom, q.group};
            const auto [it, fresh] = bucket.emplace(key, (int)g.size());
            if (fresh) g.emplace_back().count.assign(slots.size() * (size_t)ts.n_expert, 0);
            return it->second;
        },
        g);
    if (both)
        throw Error(
            fmt::format("{}: a sequence is selected by both --pair-a '{}' and --pair-b '{}' (make the two "
                        "selections disjoint)",
                        ts.dirs.front(), opt.pair_a, opt.pair_b));
    const int n_expert = ts.n_expert;
    GroupCounts side[2];
    for (auto & s : side) s.count.assign(slots.size() * (size_t)n_expert, 0);
    int64_t n_pairs = 0;
    for (const auto & [key, gi] : bucket) {
        const auto & [s, dom, grp] = key;
        if (bucket.count({1 - s, dom, grp}) == 0) continue;  // unpaired
        n_pairs += s == 0;
        auto & d = side[s];
        for (size_t k = 0; k < d.count.size(); ++k) d.count[k] += g[(size_t)gi].count[k];
        d.n_tok += g[(size_t)gi].n_tok;
        d.n_seq += g[(size_t)gi].n_seq;
    }
    if (n_pairs == 0)
        throw Error(
            fmt::format("{}: --pair-a '{}' and --pair-b '{}' share no parallel group with tokens (select "
                        "parallel sequences, e.g. two languages of one FLoRes trace)",
                        ts.dirs.front(), opt.pair_a, opt.pair_b));
    std::vector<std::vector<double>> rd(slots.size());
    for (size_t l = 0; l < slots.size(); ++l) {
        const auto ca = std::span(side[0].count).subspan(l * (size_t)n_expert, (size_t)n_expert);
        const auto cb = std::span(side[1].count).subspan(l * (size_t)n_expert, (size_t)n_expert);
        rd[l] = steermoe_risk_difference(ca, side[0].n_tok, cb, side[1].n_tok);
    }
    SteerMoeOptions so{opt.n_activate, opt.n_deactivate, opt.reverse, ts.top_k};
    const auto sel = steermoe_select(rd, so);
    // steer_moe raises when fewer experts exist than asked for
    if (sel.n_positive < opt.n_activate || sel.n_negative < opt.n_deactivate)
        throw Error(
            fmt::format("{}: only {} experts have RD > 0 and {} RD < 0; --n-activate {} / --n-deactivate {} "
                        "ask for more (lower them)",
                        ts.dirs.front(), sel.n_positive, sel.n_negative, opt.n_activate, opt.n_deactivate));
    std::vector<std::vector<int>> act(slots.size()), deact(slots.size());
    std::map<std::pair<int, int>, std::pair<int, const char *>> rank;  // (slot, e) → (rank, set)
    for (size_t r = 0; r < sel.ranking.size(); ++r)
        rank[{sel.ranking[r].layer, sel.ranking[r].expert}] = {(int)r + 1, ""};
    for (const auto & x : sel.activate)
        act[(size_t)x.layer].push_back(x.expert), rank[{x.layer, x.expert}].second = "activate";
    for (const auto & x : sel.deactivate)
        deact[(size_t)x.layer].push_back(x.expert), rank[{x.layer, x.expert}].second = "deactivate";
    for (auto & v : act) std::sort(v.begin(), v.end());
    for (auto & v : deact) std::sort(v.begin(), v.end());
    for (size_t l = 0; l < slots.size(); ++l)
        for (int e = 0; e < n_expert; ++e) {
            const auto & [rk, set] = rank[{(int)l, e}];
            csv.field(ts.moe_layers[(size_t)slots[l]]).field(e);
            csv.field(side[0].count[l * (size_t)n_expert + (size_t)e])
                .field(side[1].count[l * (size_t)n_expert + (size_t)e]);
            csv.field((double)side[0].count[l * (size_t)n_expert + (size_t)e] / (double)side[0].n_tok);
            csv.field((double)side[1].count[l * (size_t)n_expert + (size_t)e] / (double)side[1].n_tok);
            csv.field(opt.reverse ? -rd[l][(size_t)e] : rd[l][(size_t)e])
                .field((int64_t)rk)
                .field(std::string(set));
            csv.end_row();
        }
    rep.n_selected = (int64_t)(sel.activate.size() + sel.deactivate.size());
    rep.n_seq_target = side[0].n_seq, rep.n_seq_baseline = side[1].n_seq;
    j["source"] =
        "Fayyaz et al. 2025 (SteerMoE); github.com/JACKPURCELL/SteerMoE @ 0986afb7 (a fork of "
        "adobe-research/SteerMoE), custom_steering.ipynb and src/utils.py";
    j["params"] = {{"pair_a", opt.pair_a},         {"pair_b", opt.pair_b},
                   {"n_activate", opt.n_activate}, {"n_deactivate", opt.n_deactivate},
                   {"reverse", opt.reverse},       {"top_k_cap", ts.top_k}};
    j["n_pairs"] = n_pairs;
    j["n_seq"] = {{"a", side[0].n_seq}, {"b", side[1].n_seq}};
    j["n_tok"] = {{"a", side[0].n_tok}, {"b", side[1].n_tok}};
    j["n_dropped_by_cap"] = sel.n_dropped_by_cap;
    j["sets"] = {{"activate", by_layer(ts, slots, [&](size_t l) { return json(act[l]); })},
                 {"deactivate", by_layer(ts, slots, [&](size_t l) { return json(deact[l]); })}};
    j["risk_difference"] = by_layer(ts, slots, [&](size_t l) {
        std::vector<double> v = rd[l];
        if (opt.reverse)
            for (double & x : v) x = -x;
        return json(v);
    });
}

}  // namespace

std::string run_experts_method(const ExpertsOptions & opt, const TraceSet & ts,
                               const std::vector<int> & slots, nlohmann::json & j, ExpertsReport & rep) {
    std::vector<std::string> header;
    if (opt.method == "chen")
        header = {"layer", "expert", "lang", "freq", "share", "shared", "exclusive"};
    else if (opt.method == "rise")
        header = {"zone", "layer", "expert", "score", "specificity", "overlap", "freq_target", "freq_mean"};
    else
        header = {"layer", "expert", "count_a", "count_b", "p_a", "p_b", "risk_difference", "rank", "set"};
    Csv csv(header);
    if (opt.method == "chen")
        chen(opt, ts, slots, j, csv, rep);
    else if (opt.method == "rise")
        rise(opt, ts, slots, j, csv, rep);
    else
        steermoe(opt, ts, slots, j, csv, rep);
    return csv.str();
}

}  // namespace rs::analysis
