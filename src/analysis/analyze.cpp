// `analyze`, part 1: stream the traces shard by shard into per-language/per-domain accumulators and
// per-pair divergences (Bandarkar et al. 2025, §4.3–4.4; formulas in src/metrics).
//
// Memory: one shard (two with more than one thread: the next is read ahead), its per-sequence summaries, the
// q (in double) of the parallel groups not yet complete (traces are group-major, so a group's languages are
// adjacent), the per-pair scalar divergences, and — only with several traces — the q of every parallel
// sequence of the traces before the last, so that the language × language matrix pairs across traces.
// Speed: each shard is read once as stored (read_shard_raw, the next one on a second thread into a recycled
// buffer) and every per-sequence figure of every layer comes from one pass over its rows
// (summarise_sequence_raw: no f32 copy of the shard); H(q) of a member is computed once for all its pairs.
// Determinism: summaries and group divergences are computed in parallel (parallel_map) but added in
// sequence/group order, so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include <fmt/format.h>

#include "analysis_internal.h"
#include "routescope/common.h"

namespace rs::analysis {

namespace {

// One sequence of a parallel group: its language and q per slot ([n_moe × E], empty if it has no token).
// q stays in double: near uniform routing makes the D_H-JS normaliser log E − ½(H(a)+H(b)) small, and a
// float q would amplify its rounding into the divergence (~1e-3 relative).
struct Member {
    int lang = 0;
    bool duplicate = false;  // the same (domain, group, language) came from an earlier trace: counted once
    std::vector<double> q;
    std::vector<double> h;  // [n_moe] H(q) per slot, computed once per sequence
};

// The members one trace contributes to a parallel group (domain, group).
struct Group {
    int domain = 0;
    int64_t group = -1;
    std::vector<Member> members;
    const Member * pivot = nullptr;                 // the pivot's member (own, or an earlier trace's)
    const std::vector<Member> * earlier = nullptr;  // members of the group in earlier traces (or null)
};

struct GroupResult {
    std::vector<std::vector<std::optional<double>>> vs_pivot;  // [member][slot]
    struct Pair {
        int la = 0, lb = 0;
        std::vector<std::optional<double>> v;  // [slot]
    };
    std::vector<Pair> pairs;  // every language pair of the group not counted before, once
};

// D_H-JS (Eqs. 7–8) of every member against the pivot, and of every new language pair of the group: the
// non-duplicate members of this trace with each other (a ≤ b) and with the members of earlier traces.
GroupResult compute_group(const Group & g, int n_moe, int n_expert, HjsNormaliser norm) {
    GroupResult r;
    const size_t e = (size_t)n_expert;
    // log q of every member this group pairs, once (each is paired with several others)
    std::map<const Member *, std::vector<double>> logs;
    auto log_of = [&](const Member & m) -> const std::vector<double> & {
        auto & lq = logs[&m];
        if (lq.empty()) {
            lq.resize(m.q.size());
            for (size_t i = 0; i < m.q.size(); ++i) lq[i] = m.q[i] > 0.0 ? std::log(m.q[i]) : 0.0;
        }
        return lq;
    };
    auto hjs_all = [&](const Member & a, const Member & b) {
        std::vector<std::optional<double>> v((size_t)n_moe);
        if (a.q.empty() || b.q.empty()) return v;
        if (&a == &b) {  // the diagonal and the pivot with itself: exactly 0 (or undefined), no logarithms
            for (int l = 0; l < n_moe; ++l) v[(size_t)l] = hjs_divergence_self(e, a.h[(size_t)l], norm);
            return v;
        }
        const auto &la = log_of(a), &lb = log_of(b);
        for (int l = 0; l < n_moe; ++l) {
            const size_t o = (size_t)l * e;
            const std::span<const double> sa(a.q.data() + o, e), sb(b.q.data() + o, e);
            v[(size_t)l] = hjs_divergence_given_logs(sa, sb, std::span<const double>(la.data() + o, e),
                                                     std::span<const double>(lb.data() + o, e),
                                                     a.h[(size_t)l], b.h[(size_t)l], norm);
        }
        return v;
    };
    static const Member kNone;
    const Member & pm = g.pivot ? *g.pivot : kNone;
    for (const auto & m : g.members) r.vs_pivot.push_back(hjs_all(pm, m));
    for (size_t b = 0; b < g.members.size(); ++b) {
        const Member & mb = g.members[b];
        if (mb.duplicate) continue;
        if (g.earlier)
            for (const Member & ma : *g.earlier) r.pairs.push_back({ma.lang, mb.lang, hjs_all(ma, mb)});
        for (size_t a = 0; a <= b; ++a) {
            const Member & ma = g.members[a];
            if (!ma.duplicate) r.pairs.push_back({ma.lang, mb.lang, hjs_all(ma, mb)});
        }
    }
    return r;
}

int index_of(std::vector<std::string> & names, const std::string & s) {
    const auto it = std::find(names.begin(), names.end(), s);
    if (it != names.end()) return (int)(it - names.begin());
    names.push_back(s);
    return (int)names.size() - 1;
}

bool has_lang(const TraceManifest & m, const std::string & lang) {
    return std::find(m.langs.begin(), m.langs.end(), lang) != m.langs.end();
}

}  // namespace

AnalyzeState accumulate_traces(const AnalyzeOptions & opt) {
    AnalyzeState st;
    st.opt = opt;
    st.ts = load_trace_set(opt.traces);
    const TraceSet & ts = st.ts;
    const int n_moe = ts.n_moe, n_expert = ts.n_expert;
    const size_t n_trace = ts.dirs.size();

    // global languages/domains in order of first appearance
    for (const auto & m : ts.manifests) {
        for (const auto & l : m.langs) index_of(st.langs, l);
        for (const auto & d : m.domains) index_of(st.domains, d);
    }
    // --pooling / --entropy / --normaliser, and what the traces can give: softmax pooling needs the full p_t,
    // gate pooling the top-k ids and their p, which every trace holds (metrics.h, Pooling)
    if (opt.pooling != "" && opt.pooling != "softmax" && opt.pooling != "gate")
        throw Error(fmt::format("--pooling {}: unknown (use softmax or gate)", opt.pooling));
    if (opt.entropy != "token" && opt.entropy != "pooled")
        throw Error(fmt::format("--entropy {}: unknown (use token or pooled)", opt.entropy));
    if (opt.normaliser != "undefined" && opt.normaliser != "clamp")
        throw Error(fmt::format("--normaliser {}: unknown (use undefined or clamp)", opt.normaliser));
    st.pooling = opt.pooling == "gate" ? Pooling::gate : Pooling::softmax;
    st.pooled_entropy = opt.entropy == "pooled";
    st.normaliser = opt.normaliser == "clamp" ? HjsNormaliser::clamp : HjsNormaliser::undefined;
    for (size_t i = 0; i < n_trace; ++i)
        if (ts.manifests[i].store == "topk") {
            st.any_topk_store = true;
            if (opt.pooling == "softmax")
                throw Error(fmt::format(
                    "{}: recorded with --store topk, it holds no full p_t for --pooling softmax (use "
                    "--pooling gate, or record with --store full)",
                    ts.dirs[i]));
        }
    st.topk_only = st.any_topk_store && st.pooling == Pooling::softmax;
    if (st.topk_only && !opt.scores.empty())
        throw Error(
            "--scores correlates the divergence from the pivot, which a trace recorded with --store "
            "topk cannot give (record with --store full)");
    const auto pit = std::find(st.langs.begin(), st.langs.end(), opt.pivot);
    if (pit == st.langs.end() && st.topk_only) {
        st.pivot = -1;  // divergence is not computed: no pivot needed
    } else if (pit == st.langs.end())
        throw Error("pivot language " + opt.pivot + " is absent from the trace" + (n_trace > 1 ? "s" : "") +
                    " (languages: " + join(st.langs) + ")");
    else
        st.pivot = (int)(pit - st.langs.begin());
    const size_t n_lang = st.langs.size();
    st.by_lang.assign(n_lang, std::vector<LayerAccumulator>((size_t)n_moe, LayerAccumulator(n_expert)));
    st.by_domain.assign(st.domains.size(),
                        std::vector<LayerAccumulator>((size_t)n_moe, LayerAccumulator(n_expert)));
    st.div_pairs.assign(n_trace, std::vector<std::vector<std::vector<std::optional<double>>>>(
                                     n_lang, std::vector<std::vector<std::optional<double>>>((size_t)n_moe)));
    st.pairwise.assign(n_lang * n_lang * (size_t)n_moe, PairCell{});
    st.paired.assign(n_lang, 0);

    // Traces with the pivot language go first: they may provide the pivot q of other traces' groups.
    std::vector<size_t> order;
    for (size_t i = 0; i < n_trace; ++i)
        if (has_lang(ts.manifests[i], opt.pivot)) order.push_back(i);
    for (size_t i = 0; i < n_trace; ++i)
        if (!has_lang(ts.manifests[i], opt.pivot)) order.push_back(i);
    // Members of the parallel groups of the traces read so far, kept (only while another trace follows) so
    // that the language × language matrix pairs across traces by (domain, group) as divergence.csv does, and
    // so that a sentence recorded in two traces counts once.
    std::map<std::pair<int, int64_t>, std::vector<Member>> store;
    std::set<std::tuple<int, int64_t, int>> seen;  // (domain, group, language) of earlier traces

    for (size_t oi = 0; oi < order.size(); ++oi) {
        const size_t ti = order[oi];
        const bool keep = oi + 1 < order.size();  // a later trace may pair with this one's groups
        const std::string & dir = ts.dirs[ti];
        const TraceManifest & m = ts.manifests[ti];
        std::vector<int> lang_map, dom_map;
        for (const auto & l : m.langs) lang_map.push_back(index_of(st.langs, l));
        for (const auto & d : m.domains) dom_map.push_back(index_of(st.domains, d));
        const SummaryOptions sopt{.seed = derive_seed(opt.seed, ti, 0), .pooling = st.pooling};
        std::set<std::pair<int, int64_t>> closed;
        std::optional<Group> open;
        std::vector<Group> ready;
        auto earlier_of = [&](const std::pair<int, int64_t> & key) -> const std::vector<Member> * {
            const auto it = store.find(key);
            return it == store.end() ? nullptr : &it->second;
        };

        auto close_open = [&]() {
            if (!open) return;
            Group & g = *open;
            closed.insert({g.domain, g.group});
            g.earlier = earlier_of({g.domain, g.group});
            for (const auto & mem : g.members)
                if (mem.lang == st.pivot) g.pivot = &mem;
            if (!g.pivot && g.earlier)
                for (const auto & mem : *g.earlier)
                    if (mem.lang == st.pivot) g.pivot = &mem;
            if (!g.pivot)
                throw Error(
                    fmt::format("mismatched parallel groups: group {} ({}) of trace {} has no {} "
                                "sequence in any trace",
                                g.group, st.domains[(size_t)g.domain], dir, opt.pivot));
            ready.push_back(std::move(g));
            open.reset();
        };
        // pairs the ready groups (in parallel) and adds the results in group order
        auto flush_ready = [&]() {
            const auto res = parallel_map<GroupResult>((int64_t)ready.size(), opt.n_threads, [&](int64_t i) {
                return compute_group(ready[(size_t)i], n_moe, n_expert, st.normaliser);
            });
            for (size_t gi = 0; gi < ready.size(); ++gi) {
                Group & g = ready[gi];
                const GroupResult & r = res[gi];
                for (size_t a = 0; a < g.members.size(); ++a) {
                    const int la = g.members[a].lang;
                    for (int l = 0; l < n_moe; ++l)
                        st.div_pairs[ti][(size_t)la][(size_t)l].push_back(r.vs_pivot[a][(size_t)l]);
                }
                for (const auto & pr : r.pairs)
                    for (int l = 0; l < n_moe; ++l) {
                        st.cell(pr.la, pr.lb, l).add(pr.v[(size_t)l]);
                        if (pr.la != pr.lb) st.cell(pr.lb, pr.la, l).add(pr.v[(size_t)l]);
                    }
            }
            if (keep)
                for (Group & g : ready) {
                    auto & kept = store[{g.domain, g.group}];
                    for (Member & mem : g.members)
                        if (!mem.duplicate) kept.push_back(std::move(mem));
                }
            ready.clear();
        };

        std::set<std::tuple<int, int64_t, int>> seen_here;  // joins `seen` after this trace
        // full p_t from a full trace whenever q is wanted (gate pooling takes the selected experts' p from
        // it); a topk trace always hands out the selected experts' p (topk_probs)
        const bool with_probs = m.store != "topk" && !st.topk_only;
        for_each_raw_shard(dir, m, opt.n_threads, with_probs, [&](int64_t shard, const RawShard & s) {
            if (s.n_moe != n_moe || s.n_expert != n_expert || s.top_k != ts.top_k)
                throw Error(fmt::format("shard {} of trace {} does not match its manifest", shard, dir));
            // per-sequence statistics of every layer in one pass over the stored rows, in parallel; added
            // below in sequence order
            const RawProbs probs{.f16 = s.probs_f16,
                                 .f32 = s.probs_f32,
                                 .topk_f16 = st.topk_only ? nullptr : s.topk_probs_f16,
                                 .topk_f32 = st.topk_only ? nullptr : s.topk_probs_f32};
            const auto sums = parallel_map<std::vector<SequenceLayerStats>>(
                (int64_t)s.seqs.size(), opt.n_threads, [&](int64_t i) {
                    const TraceSeq & q = s.seqs[(size_t)i];
                    return summarise_sequence_raw(probs, s.topk, q.tok_begin, q.n_tok, n_moe, n_expert,
                                                  ts.top_k, q.index, sopt);
                });
            for (size_t i = 0; i < s.seqs.size(); ++i) {
                const TraceSeq & q = s.seqs[i];
                if (q.lang < 0 || (size_t)q.lang >= lang_map.size() || q.domain < 0 ||
                    (size_t)q.domain >= dom_map.size())
                    throw Error(
                        fmt::format("trace {}: sequence {} has a language or domain index outside "
                                    "the manifest",
                                    dir, q.index));
                const int lang = lang_map[(size_t)q.lang], dom = dom_map[(size_t)q.domain];
                const std::pair<int, int64_t> key{dom, q.group};
                // the same parallel sentence (domain, group, language) already read from an earlier trace
                const bool duplicate = q.group >= 0 && seen.count({dom, q.group, lang});
                if (keep && q.group >= 0 && !duplicate) seen_here.insert({dom, q.group, lang});
                if (duplicate) {
                    ++st.n_duplicates;
                } else {
                    ++st.n_sequences;
                    st.n_tokens += q.n_tok;
                    for (int l = 0; l < n_moe; ++l) {
                        st.by_lang[(size_t)lang][(size_t)l].add(sums[i][(size_t)l]);
                        st.by_domain[(size_t)dom][(size_t)l].add(sums[i][(size_t)l]);
                    }
                }
                // unpaired, or ids only (--store topk): no divergence from the pivot
                if (q.group < 0 || st.topk_only) continue;
                if (!open || open->domain != dom || open->group != q.group) {
                    close_open();
                    if (closed.count(key))
                        throw Error(
                            fmt::format("trace {} is not group-major: group {} appears twice", dir, q.group));
                    open = Group{.domain = dom, .group = q.group};
                }
                for (const auto & mem : open->members)
                    if (mem.lang == lang)
                        throw Error(
                            fmt::format("mismatched parallel groups: group {} of trace {} has two {} "
                                        "sequences",
                                        q.group, dir, st.langs[(size_t)lang]));
                Member mem{.lang = lang, .duplicate = duplicate};
                if (q.n_tok > 0) {  // q in double: E values per slot, and its entropy
                    mem.q.resize((size_t)n_moe * (size_t)n_expert);
                    mem.h.resize((size_t)n_moe);
                    for (int l = 0; l < n_moe; ++l) {
                        const auto & imp = sums[i][(size_t)l].importance;
                        std::copy(imp.begin(), imp.end(), mem.q.begin() + (ptrdiff_t)l * n_expert);
                        // H(q), computed with the summary (in parallel): entropy(imp)
                        mem.h[(size_t)l] = *sums[i][(size_t)l].pooled_entropy;
                    }
                }
                open->members.push_back(std::move(mem));
                st.paired[(size_t)lang] = 1;
            }
            flush_ready();
        });
        close_open();
        flush_ready();
        seen.insert(seen_here.begin(), seen_here.end());
    }
    return st;
}

}  // namespace rs::analysis
