// `analyze`, part 2: turn the accumulated state into the tables and JSON files listed in analysis.h.
// Formulas come from src/metrics: Eq. 2 divergence summary and bootstrap (divergence.h), middle-layer rule
// (middle_layers.h), Pearson/Spearman (stats.h), routing isolation (language_experts.h), RISE specificity
// and overlap (rise.h), unpaired domain divergence (divergence.h), average-linkage clustering (cluster.h).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "analysis_internal.h"
#include "routescope/common.h"
#include "routescope/rise.h"

namespace rs::analysis {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

json opt_json(std::optional<double> v) {
    return v ? json(*v) : json(nullptr);
}

// Mean of the defined values (nullopt when none).
std::optional<double> mean_defined(const std::vector<std::optional<double>> & v) {
    double s = 0.0;
    int64_t n = 0;
    for (const auto & x : v)
        if (x) s += *x, ++n;
    if (n == 0) return std::nullopt;
    return s / (double)n;
}

struct DivRow {
    size_t trace = 0;
    int lang = 0;
    std::vector<PairedDivergence> per_slot;
    std::vector<std::optional<double>> div;  // per slot, nullopt when no pair is defined
};

// filled: [n × n] flags of the cells that had no defined pair and were given the fill distance; they are
// listed in the JSON ("filled": [[a, b], …], a < b) so that a dendrogram resting on them is not silent.
json clustering_json(std::span<const double> dist, const std::vector<std::string> & names,
                     const std::vector<uint8_t> & filled) {
    const int n = (int)names.size();
    const auto merges = average_linkage(dist, n);
    json jm = json::array();
    for (const auto & m : merges)
        jm.push_back({{"a", m.a}, {"b", m.b}, {"distance", m.distance}, {"size", m.size}});
    json order = json::array();
    for (int i : dendrogram_leaf_order(merges, n)) order.push_back(names[(size_t)i]);
    json jf = json::array();
    for (int a = 0; a < n; ++a)
        for (int b = a + 1; b < n; ++b)
            if (!filled.empty() && filled[(size_t)a * n + b])
                jf.push_back({names[(size_t)a], names[(size_t)b]});
    return {{"langs", names}, {"merges", jm}, {"leaf_order", order}, {"filled", jf}};
}

}  // namespace

AnalyzeReport write_analysis(const AnalyzeState & st) {
    const TraceSet & ts = st.ts;
    const AnalyzeOptions & opt = st.opt;
    const int n_moe = ts.n_moe, n_expert = ts.n_expert;
    const int n_lang = (int)st.langs.size();
    const std::string & model = ts.model;
    const std::string out = opt.out_dir;
    OutputFiles files;  // every table appears together at the end, or none does (issue #15)
    AnalyzeReport rep;
    rep.n_sequences = st.n_sequences;
    rep.n_tokens = st.n_tokens;
    rep.n_layers = n_moe;
    rep.n_langs = n_lang;
    rep.topk_only = st.topk_only;

    // ---- divergence from the pivot (Eq. 2) with bootstrap CIs
    std::vector<DivRow> rows;
    for (size_t ti = 0; ti < ts.dirs.size(); ++ti)
        for (int la = 0; la < n_lang; ++la)
            if (!st.div_pairs[ti][(size_t)la][0].empty()) rows.push_back(DivRow{.trace = ti, .lang = la});
    // the bootstrap of every (row, layer) in parallel: each has its own seed, so the thread count is moot
    const auto summaries =
        parallel_map<PairedDivergence>((int64_t)rows.size() * n_moe, opt.n_threads, [&](int64_t i) {
            const size_t ri = (size_t)(i / n_moe);
            const int l = (int)(i % n_moe);
            const BootstrapOptions bs{.n_resamples = opt.bootstrap_resamples,
                                      .seed = derive_seed(opt.seed, ri, (uint64_t)l)};
            return summarise_pairs(st.div_pairs[rows[ri].trace][(size_t)rows[ri].lang][(size_t)l], bs);
        });
    for (size_t ri = 0; ri < rows.size(); ++ri) {
        DivRow & r = rows[ri];
        for (int l = 0; l < n_moe; ++l) {
            r.per_slot.push_back(summaries[ri * (size_t)n_moe + (size_t)l]);
            r.div.push_back(r.per_slot.back().defined() ? std::optional(r.per_slot.back().mean)
                                                        : std::nullopt);
            rep.n_undefined_pairs += r.per_slot.back().n_undefined;
        }
    }
    Csv div_csv({"model", "trace", "lang", "layer", "div", "ci_lo", "ci_hi", "n_pairs", "n_undefined"});
    for (const auto & r : rows)
        for (int l = 0; l < n_moe; ++l) {
            const auto & pd = r.per_slot[(size_t)l];
            div_csv.field(model).field(ts.dirs[r.trace]).field(st.langs[(size_t)r.lang]);
            div_csv.field(ts.moe_layers[(size_t)l]).field(r.div[(size_t)l]);
            if (pd.defined())
                div_csv.field(pd.ci.lo).field(pd.ci.hi);
            else
                div_csv.field(std::optional<double>{}).field(std::optional<double>{});
            div_csv.field(pd.n_pairs).field(pd.n_undefined);
            div_csv.end_row();
        }
    // a --store topk trace has no full p_t: the tables that need it are not written (and an older copy in the
    // output directory is removed at commit, so that no reader mistakes it for this analysis)
    const std::vector<std::string> needs_p = {"divergence.csv", "entropy.csv", "pairwise.csv",
                                              "clusters.json",  "domains.csv", "correlation.csv"};
    auto write_p = [&](const std::string & name, std::string text) {
        if (!st.topk_only) files.add(out + "/" + name, std::move(text));
    };
    write_p("divergence.csv", div_csv.str());

    // ---- middle layers: the automatic rule on the mean non-pivot curve, or --middle
    std::vector<std::optional<double>> curve_in;
    int n_curve = 0;
    for (const auto & r : rows)
        if (r.lang != st.pivot) curve_in.insert(curve_in.end(), r.div.begin(), r.div.end()), ++n_curve;
    const auto curve = mean_over_languages(curve_in, n_curve, n_moe);
    std::vector<int> mid;  // slots
    std::optional<MiddleLayerRange> auto_range;
    if (opt.middle) {
        mid = select_slots(ts, opt.middle, "--middle");
        rep.middle_auto = false;
    } else if (n_curve > 0 && (auto_range = middle_layer_range(curve))) {
        for (int l = auto_range->first; l <= auto_range->last; ++l) mid.push_back(l);
    }
    if (!mid.empty())
        rep.middle_first = ts.moe_layers[(size_t)mid.front()],
        rep.middle_last = ts.moe_layers[(size_t)mid.back()];
    std::vector<int> headline = mid;  // layers the summary averages over: middle, else all
    if (headline.empty())
        for (int l = 0; l < n_moe; ++l) headline.push_back(l);

    // ---- entropy and consistency per language (§4.4)
    Csv ent_csv({"model", "lang", "layer", "entropy"});
    Csv con_csv({"model", "lang", "layer", "consistency", "n_seq", "n_undefined"});
    for (int la = 0; la < n_lang; ++la) {
        if (st.by_lang[(size_t)la][0].n_seq == 0) continue;
        for (int l = 0; l < n_moe; ++l) {
            const auto & acc = st.by_lang[(size_t)la][(size_t)l];
            ent_csv.field(model).field(st.langs[(size_t)la]).field(ts.moe_layers[(size_t)l]);
            ent_csv.field(st.pooled_entropy ? acc.pooled_entropy.mean() : acc.entropy.mean());
            ent_csv.end_row();
            con_csv.field(model).field(st.langs[(size_t)la]).field(ts.moe_layers[(size_t)l]);
            con_csv.field(acc.consistency.mean()).field(acc.n_seq).field(acc.consistency.n_undefined);
            con_csv.end_row();
        }
    }
    write_p("entropy.csv", ent_csv.str());
    files.add(out + "/consistency.csv", con_csv.str());

    // ---- language × language divergence and clustering (Chen et al.: routing follows families)
    std::vector<int> pl;  // languages that have parallel sequences
    std::vector<std::string> pl_names;
    for (int la = 0; la < n_lang; ++la)
        if (st.paired[(size_t)la]) pl.push_back(la), pl_names.push_back(st.langs[(size_t)la]);
    const int np = (int)pl.size();
    Csv pw_csv({"model", "layer", "lang_a", "lang_b", "div", "n_pairs", "n_undefined"});
    json clusters = {{"model", model}, {"layers", json::array()}};
    std::vector<double> mid_dist((size_t)np * np, 0.0);
    std::vector<uint8_t> mid_filled((size_t)np * np, 0);
    for (int l = 0; l < n_moe; ++l) {
        DivergenceMatrix dm;
        dm.n = np;
        dm.value.assign((size_t)np * np, 0.0);
        dm.n_defined.assign((size_t)np * np, 0);
        dm.n_undefined.assign((size_t)np * np, 0);
        for (int a = 0; a < np; ++a)
            for (int b = 0; b < np; ++b) {
                const PairCell & c = st.cell(pl[(size_t)a], pl[(size_t)b], l);
                pw_csv.field(model).field(ts.moe_layers[(size_t)l]).field(pl_names[(size_t)a]);
                pw_csv.field(pl_names[(size_t)b]).field(c.mean()).field(c.n_defined + c.n_undefined);
                pw_csv.field(c.n_undefined);
                pw_csv.end_row();
                const size_t k = (size_t)a * np + b;
                dm.value[k] = c.mean().value_or(0.0);
                dm.n_defined[k] = c.n_defined;
                dm.n_undefined[k] = c.n_undefined;
            }
        // cells are defined wherever the two languages share a parallel group (in any traces); the rest
        // (no common group, or every pair below the normaliser floor) take the largest defined distance
        const auto dist = dm.distances_filled();
        std::vector<uint8_t> filled((size_t)np * np, 0);
        for (int a = 0; a < np; ++a)
            for (int b = 0; b < np; ++b) filled[(size_t)a * np + b] = !dm.defined(a, b);
        if (std::find(mid.begin(), mid.end(), l) != mid.end())
            for (size_t k = 0; k < dist.size(); ++k) {
                mid_dist[k] += dist[k] / (double)mid.size();
                mid_filled[k] = mid_filled[k] || filled[k];
            }
        json c = clustering_json(dist, pl_names, filled);
        c["layer"] = ts.moe_layers[(size_t)l];
        clusters["layers"].push_back(std::move(c));
    }
    clusters["middle"] = mid.empty() ? json(nullptr) : clustering_json(mid_dist, pl_names, mid_filled);
    write_p("pairwise.csv", pw_csv.str());
    write_p("clusters.json", clusters.dump(1) + "\n");

    // ---- correlation of Div(lang, l) with per-language scores (first trace row of each language)
    json corr_summary = nullptr;
    if (!opt.scores.empty()) {
        const auto scores = read_scores(opt.scores);
        std::vector<const DivRow *> use;
        std::vector<double> y;
        for (int la = 0; la < n_lang; ++la) {
            if (la == st.pivot || !scores.count(st.langs[(size_t)la])) continue;
            for (const auto & r : rows)
                if (r.lang == la) {
                    use.push_back(&r), y.push_back(scores.at(st.langs[(size_t)la]));
                    break;
                }
        }
        Csv cc({"layer", "pearson_r", "pearson_p", "spearman_rho", "spearman_p", "n"});
        auto corr = [&](const std::vector<std::optional<double>> & xs, Csv * csv) {
            std::vector<double> x, yy;
            for (size_t i = 0; i < xs.size(); ++i)
                if (xs[i]) x.push_back(*xs[i]), yy.push_back(y[i]);
            const auto p = pearson(x, yy), s = spearman(x, yy);
            if (csv) {
                csv->field(p ? std::optional(p->r) : std::nullopt)
                    .field(p ? std::optional(p->p) : std::nullopt);
                csv->field(s ? std::optional(s->r) : std::nullopt)
                    .field(s ? std::optional(s->p) : std::nullopt);
                csv->field((int64_t)x.size());
                csv->end_row();
            }
            return json{{"pearson_r", p ? json(p->r) : json(nullptr)},
                        {"spearman_rho", s ? json(s->r) : json(nullptr)},
                        {"n", x.size()}};
        };
        for (int l = 0; l < n_moe; ++l) {
            std::vector<std::optional<double>> xs;
            for (const auto * r : use) xs.push_back(r->div[(size_t)l]);
            cc.field(ts.moe_layers[(size_t)l]);
            corr(xs, &cc);
        }
        std::vector<std::optional<double>> xm;  // mean over the headline layers
        for (const auto * r : use) {
            std::vector<std::optional<double>> v;
            for (int l : headline) v.push_back(r->div[(size_t)l]);
            xm.push_back(mean_defined(v));
        }
        corr_summary = corr(xm, nullptr);
        files.add(out + "/correlation.csv", cc.str());
    }

    // ---- routing isolation (ours, language_experts.h); RISE specificity and overlap (rise.h)
    std::vector<int> fl;  // languages with tokens
    for (int la = 0; la < n_lang; ++la)
        if (st.by_lang[(size_t)la][0].tokens.n_tok > 0) fl.push_back(la);
    const int nf = (int)fl.size();
    Csv iso_csv({"model", "layer", "lang_a", "lang_b", "isolation"});
    Csv rise_csv({"model", "layer", "expert", "overlap", "top_lang", "specificity"});
    for (int l = 0; l < n_moe && nf > 0; ++l) {
        std::vector<double> f;
        for (int la : fl) {
            const auto fr = st.by_lang[(size_t)la][(size_t)l].tokens.frequency();
            f.insert(f.end(), fr.begin(), fr.end());
        }
        const auto iso = routing_isolation_matrix(f, nf, n_expert, ts.top_k);
        for (int a = 0; a < nf; ++a)
            for (int b = a + 1; b < nf; ++b) {
                iso_csv.field(model).field(ts.moe_layers[(size_t)l]).field(st.langs[(size_t)fl[(size_t)a]]);
                iso_csv.field(st.langs[(size_t)fl[(size_t)b]]).field(iso[(size_t)a * nf + b]);
                iso_csv.end_row();
            }
        // RISE's overlap O and specificity S (rise.h, the authors' definitions); S is relative to the mean
        // over languages, so it is left empty for a single language as RISE refuses one
        const auto ov = rise_overlap(f, nf, n_expert);
        std::vector<double> sp;
        for (int a = 0; a < nf && nf >= 2; ++a) {
            const auto s = rise_specificity(f, nf, n_expert, a);
            sp.insert(sp.end(), s.begin(), s.end());
        }
        for (int e = 0; e < n_expert; ++e) {
            rise_csv.field(model).field(ts.moe_layers[(size_t)l]).field(e).field(ov[(size_t)e]);
            if (nf >= 2) {
                int best = 0;
                for (int a = 1; a < nf; ++a)
                    if (sp[(size_t)a * n_expert + e] > sp[(size_t)best * n_expert + e]) best = a;
                rise_csv.field(st.langs[(size_t)fl[(size_t)best]]).field(sp[(size_t)best * n_expert + e]);
            } else {
                rise_csv.field(std::string()).field(std::optional<double>{});
            }
            rise_csv.end_row();
        }
    }
    files.add(out + "/isolation.csv", iso_csv.str());
    files.add(out + "/experts_rise.csv", rise_csv.str());

    // ---- unpaired divergence between domains (corpus-mean q)
    Csv dom_csv({"model", "layer", "domain_a", "domain_b", "div"});
    int64_t n_undefined_domains = 0;
    for (int l = 0; l < n_moe && !st.topk_only; ++l)
        for (size_t a = 0; a < st.domains.size(); ++a)
            for (size_t b = a + 1; b < st.domains.size(); ++b) {
                const auto qa = st.by_domain[a][(size_t)l].mean_importance();
                const auto qb = st.by_domain[b][(size_t)l].mean_importance();
                if (qa.empty() || qb.empty()) continue;
                const auto d =
                    st.normaliser == HjsNormaliser::undefined
                        ? unpaired_divergence(qa, qb)
                        : hjs_divergence_given_entropies(qa, qb, entropy(std::span<const double>(qa)),
                                                         entropy(std::span<const double>(qb)), st.normaliser);
                n_undefined_domains += !d;
                dom_csv.field(model)
                    .field(ts.moe_layers[(size_t)l])
                    .field(st.domains[a])
                    .field(st.domains[b]);
                dom_csv.field(d);
                dom_csv.end_row();
            }
    write_p("domains.csv", dom_csv.str());

    // ---- summary.json: headline numbers over the middle layers (all layers when there is no range)
    json js;
    js["model"] = {{"name", model},
                   {"arch", ts.first().arch},
                   {"sha256", ts.first().model_sha256},
                   {"n_layer", ts.first().n_layer},
                   {"moe_layers", ts.moe_layers},
                   {"n_expert", n_expert},
                   {"top_k", ts.top_k}};
    js["traces"] = json::array();
    for (size_t ti = 0; ti < ts.dirs.size(); ++ti)
        js["traces"].push_back({{"path", ts.dirs[ti]},
                                {"corpus", ts.manifests[ti].corpus},
                                {"langs", ts.manifests[ti].langs},
                                {"domains", ts.manifests[ti].domains},
                                {"n_sequences", ts.manifests[ti].n_sequences}});
    js["pivot"] = opt.pivot;
    js["seed"] = opt.seed;
    js["n_sequences"] = st.n_sequences;
    js["n_tokens"] = st.n_tokens;
    js["n_duplicate_sequences"] = st.n_duplicates;
    js["store"] = st.any_topk_store ? "topk" : "full";
    // the definitions used (analysis.h, AnalyzeOptions), so numbers can be compared with the paper's or the
    // authors' code
    js["options"] = {{"pooling", st.pooling == Pooling::gate ? "gate" : "softmax"},
                     {"entropy", st.pooled_entropy ? "pooled" : "token"},
                     {"normaliser", st.normaliser == HjsNormaliser::clamp ? "clamp" : "undefined"}};
    if (st.topk_only) js["not_computed"] = needs_p;  // need the full p_t (trace --store full)
    if (mid.empty()) {
        js["middle_layers"] = nullptr;
    } else {
        js["middle_layers"] = {
            {"first", rep.middle_first}, {"last", rep.middle_last}, {"auto", rep.middle_auto}};
        if (auto_range) js["middle_layers"]["threshold"] = auto_range->threshold;
    }
    js["headline_layers"] = json::array();
    for (int l : headline) js["headline_layers"].push_back(ts.moe_layers[(size_t)l]);
    json jl = json::object();
    for (int la = 0; la < n_lang; ++la) {
        if (st.by_lang[(size_t)la][0].n_seq == 0) continue;
        std::vector<std::optional<double>> dv, ev, cv;
        int64_t n_pairs = 0, n_undef = 0;
        for (const auto & r : rows)
            if (r.lang == la)
                for (int l : headline) {
                    dv.push_back(r.div[(size_t)l]);
                    n_pairs += r.per_slot[(size_t)l].n_pairs, n_undef += r.per_slot[(size_t)l].n_undefined;
                }
        int64_t con_undef = 0;
        for (int l : headline) {
            const auto & acc = st.by_lang[(size_t)la][(size_t)l];
            ev.push_back(st.pooled_entropy ? acc.pooled_entropy.mean() : acc.entropy.mean());
            cv.push_back(acc.consistency.mean());
            con_undef += acc.consistency.n_undefined;
        }
        jl[st.langs[(size_t)la]] = {{"divergence", opt_json(mean_defined(dv))},
                                    {"entropy", opt_json(mean_defined(ev))},
                                    {"consistency", opt_json(mean_defined(cv))},
                                    {"n_seq", st.by_lang[(size_t)la][0].n_seq},
                                    {"n_pairs", n_pairs},
                                    {"n_undefined_pairs", n_undef},
                                    {"n_undefined_consistency", con_undef}};
    }
    js["languages"] = jl;
    js["n_undefined_pairs"] = rep.n_undefined_pairs;
    js["n_undefined_domain_pairs"] = n_undefined_domains;
    if (!opt.scores.empty()) js["correlation"] = corr_summary;
    files.add(out + "/summary.json", js.dump(1) + "\n");
    // a correlation.csv of an earlier --scores run is not ours, nor p tables with a topk trace
    std::vector<std::string> stale = {out + "/correlation.csv"};
    if (st.topk_only)
        for (const auto & f : needs_p) stale.push_back(out + "/" + f);
    files.commit(stale);
    return rep;
}

}  // namespace rs::analysis

namespace rs {

AnalyzeReport run_analyze(const AnalyzeOptions & opt) {
    if (opt.out_dir.empty()) throw Error("no output directory (--out)");
    if (opt.bootstrap_resamples < 1)
        throw Error(
            fmt::format("--bootstrap {} must be at least 1 (resamples of the CI)", opt.bootstrap_resamples));
    const auto t0 = std::chrono::steady_clock::now();
    {  // cheap checks before the traces are streamed: --middle inside the model, --scores languages known
        const analysis::TraceSet ts = analysis::load_trace_set(opt.traces);
        if (opt.middle) analysis::select_slots(ts, opt.middle, "--middle");
        if (!opt.scores.empty()) {
            const auto scores = read_scores(opt.scores);
            for (const auto & [lang, v] : scores) {
                bool known = false;
                for (const auto & m : ts.manifests)
                    known = known || std::find(m.langs.begin(), m.langs.end(), lang) != m.langs.end();
                if (!known)
                    throw Error(
                        fmt::format("{}: language {} is in no trace (languages: {}) (remove the row or "
                                    "add the language to a trace)",
                                    opt.scores, lang, analysis::join(ts.first().langs)));
            }
        }
    }
    const analysis::AnalyzeState st = analysis::accumulate_traces(opt);
    AnalyzeReport rep = analysis::write_analysis(st);
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return rep;
}

// analysis.h: a header line (two columns, the second not a number), then lang TAB score; each language
// once, every score a whole finite number ("0.3xyz" and NaN are refused).
std::map<std::string, double> read_scores(const std::string & path) {
    std::ifstream f(path);
    std::error_code ec;
    if (!f || !std::filesystem::is_regular_file(path, ec))
        throw Error(fmt::format("{}: scores file not found or not a file (check --scores)", path));
    std::map<std::string, double> out;
    std::string line;
    int n = 0;
    auto number = [](const std::string & t, double & v) {
        size_t used = 0;
        try {
            v = std::stod(t, &used);
        } catch (const std::exception &) {
            return false;
        }
        return !t.empty() && used == t.size() && !std::isspace((unsigned char)t[0]);
    };
    while (std::getline(f, line)) {
        ++n;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const size_t tab = line.find('\t');
        if (n == 1) {  // header
            double v = 0.0;
            if (tab == std::string::npos || line.find('\t', tab + 1) != std::string::npos)
                throw Error(fmt::format(
                    "{}:1: the header must be two tab-separated columns, e.g. lang<TAB>score", path));
            if (number(line.substr(tab + 1), v))
                throw Error(fmt::format(
                    "{}:1: looks like data, not a header (add a first line lang<TAB>score)", path));
            continue;
        }
        if (line.empty()) continue;
        double v = 0.0;
        const bool ok = tab != std::string::npos && tab > 0 &&
                        line.find('\t', tab + 1) == std::string::npos && number(line.substr(tab + 1), v);
        if (!ok) throw Error(fmt::format("{}:{}: expected lang<TAB>score with a number as score", path, n));
        if (!std::isfinite(v))
            throw Error(fmt::format("{}:{}: the score is not finite (give a number)", path, n));
        const std::string lang = line.substr(0, tab);
        if (out.count(lang))
            throw Error(
                fmt::format("{}:{}: language {} appears twice (keep one row per language)", path, n, lang));
        out[lang] = v;
    }
    if (n == 0)
        throw Error(
            fmt::format("{}: empty scores file (a header lang<TAB>score, then one row per language)", path));
    if (out.empty()) throw Error(fmt::format("{}: no score rows after the header", path));
    return out;
}

}  // namespace rs
