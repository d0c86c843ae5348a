// rs_analysis on synthetic traces (written with rs::write_shard, no model): selectors and layer ranges,
// a language that is an exact copy of the pivot has divergence 0, byte-identical outputs for any thread
// count, cross-trace pairing and its errors, experts Δ and sets.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "routescope/analysis.h"
#include "routescope/common.h"
#include "routescope/file_io.h"
#include "routescope/metrics.h"
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
// near_uniform > 0: p_e ∝ 1 + near_uniform·u_e (u uniform in [0, 1)), routing close to uniform.
void write_synth_trace(const fs::path & dir, const std::vector<SynthSeq> & seqs,
                       const std::string & sha = "abc", int n_moe = 3, int e = 8, int k = 2,
                       int per_shard = 5, double near_uniform = 0.0, const std::string & dtype = "f32",
                       const std::string & store = "full") {
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
    m.n_sequences = (int64_t)seqs.size(), m.seqs_per_shard = per_shard, m.probs_dtype = dtype;
    m.store = store;
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
                        sum += v = near_uniform > 0.0
                                       ? (float)(1.0 + near_uniform * (double)(rng.next() >> 11) * 0x1p-53)
                                       : (float)(1 + rs::uniform_below(rng, 100)) *
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

// Tensor `name`'s bytes [begin, end) in a safetensors file's contents, from its header (computed here from
// the format, independently of the reader under test).
std::pair<uint64_t, uint64_t> tensor_bytes(const std::string & file, const char * name) {
    uint64_t n_header = 0;
    std::memcpy(&n_header, file.data(), 8);
    const auto off = nlohmann::json::parse(file.substr(8, n_header))
                         .at(name)
                         .at("data_offsets")
                         .get<std::vector<uint64_t>>();
    return {8 + n_header + off[0], 8 + n_header + off[1]};
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

// Rows of a CSV file as field vectors (no quoted fields in these tables), header dropped.
std::vector<std::vector<std::string>> csv_rows(const fs::path & p) {
    std::vector<std::vector<std::string>> rows;
    std::istringstream in(slurp(p));
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
        std::vector<std::string> f;
        size_t b = 0;
        for (size_t e; (e = line.find(',', b)) != std::string::npos; b = e + 1)
            f.push_back(line.substr(b, e - b));
        f.push_back(line.substr(b));
        rows.push_back(std::move(f));
    }
    return rows;
}

// Defect 1 of issue 14: languages that live in different traces are paired by (domain, group) in the
// language × language matrix as in divergence.csv, a sentence recorded in two traces counts once, and the
// clustering does not rest on filled cells.
TEST(Analysis, PairwisePairsAcrossTracesAndCountsEachSentenceOnce) {
    const auto dir = tmp("pairwise_cross");
    auto c = parallel_seqs({"eng_Latn", "zho_Hans"}, 6);  // eng groups 0–5 again
    auto b = parallel_seqs({"hin_Deva", "swh_Latn"}, 10);
    for (auto & q : b)  // swh routes exactly as deu: their divergence is 0, the first merge of every layer
        if (q.lang == "swh_Latn")
            q.seed = rs::derive_seed(std::hash<std::string>{}("deu_Latn"), (uint64_t)q.group, 1);
    write_synth_trace(dir / "a", parallel_seqs({"eng_Latn", "deu_Latn"}, 10));
    write_synth_trace(dir / "b", b);
    write_synth_trace(dir / "c", c);
    rs::AnalyzeOptions opt;
    opt.bootstrap_resamples = 20;
    opt.traces = {(dir / "a").string(), (dir / "b").string(), (dir / "c").string()};
    for (const int threads : {1, 2}) {
        opt.n_threads = threads;
        opt.out_dir = (dir / ("out" + std::to_string(threads))).string();
        const auto rep = rs::run_analyze(opt);
        EXPECT_EQ(rep.n_sequences, 20 + 20 + 6);  // C's eng sequences are A's sentences: counted once
    }
    for (const char * f : {"divergence.csv", "pairwise.csv", "clusters.json", "summary.json", "entropy.csv"})
        EXPECT_EQ(slurp(dir / "out1" / f), slurp(dir / "out2" / f)) << f;
    const fs::path out = dir / "out1";

    std::map<std::string, std::vector<std::string>> div;  // "trace|lang|layer" → row
    for (auto & r : csv_rows(out / "divergence.csv")) div[r[1] + "|" + r[2] + "|" + r[3]] = r;
    std::map<std::string, std::vector<std::string>> pw;  // "a|b|layer" → row
    for (auto & r : csv_rows(out / "pairwise.csv")) pw[r[2] + "|" + r[3] + "|" + r[1]] = r;
    ASSERT_EQ(pw.size(), 3u * 5 * 5);  // 3 layers × every ordered pair of the 5 paired languages
    for (const std::string layer : {"1", "2", "3"}) {
        auto n_pairs = [&](const std::string & x, const std::string & y) {
            return std::stoll(pw.at(x + "|" + y + "|" + layer)[5]);
        };
        EXPECT_EQ(n_pairs("eng_Latn", "eng_Latn"), 10);  // not 16: groups 0–5 of eng once
        EXPECT_EQ(n_pairs("eng_Latn", "hin_Deva"), 10);
        EXPECT_EQ(n_pairs("deu_Latn", "swh_Latn"), 10);
        EXPECT_EQ(n_pairs("zho_Hans", "hin_Deva"), 6);
        EXPECT_EQ(n_pairs("zho_Hans", "eng_Latn"), 6);
        // eng × hin over the same 10 parallel pairs as hin's row of divergence.csv (pivot from trace a)
        EXPECT_EQ(pw.at("eng_Latn|hin_Deva|" + layer)[4],
                  div.at((dir / "b").string() + "|hin_Deva|" + layer)[4]);
        EXPECT_EQ(pw.at("hin_Deva|eng_Latn|" + layer)[4], pw.at("eng_Latn|hin_Deva|" + layer)[4]);
        EXPECT_EQ(pw.at("deu_Latn|swh_Latn|" + layer)[4], "0");
    }
    const auto cl = nlohmann::json::parse(slurp(out / "clusters.json"));
    ASSERT_EQ(cl["layers"].size(), 3u);
    for (const auto & l : cl["layers"]) {
        EXPECT_TRUE(l["filled"].empty()) << l.dump();
        const auto & first = l["merges"][0];
        const std::vector<std::string> langs = l["langs"];
        const std::set<std::string> pair{langs[first["a"].get<size_t>()], langs[first["b"].get<size_t>()]};
        EXPECT_EQ(pair, (std::set<std::string>{"deu_Latn", "swh_Latn"})) << l.dump();
        EXPECT_EQ(first["distance"].get<double>(), 0.0);
    }
    const auto sum = nlohmann::json::parse(slurp(out / "summary.json"));
    EXPECT_EQ(sum["n_duplicate_sequences"].get<int64_t>(), 6);
    EXPECT_EQ(sum["languages"]["eng_Latn"]["n_seq"].get<int64_t>(), 10);
}

// Defect 3 of issue 14: the same trace twice (also under another spelling) is refused, not counted twice.
TEST(Analysis, SameTraceTwiceIsRefused) {
    const auto dir = tmp("twice");
    write_synth_trace(dir / "t", parallel_seqs({"eng_Latn", "deu_Latn"}, 4));
    rs::AnalyzeOptions opt;
    opt.traces = {(dir / "t").string(), (dir / "." / "t").string()};
    opt.out_dir = (dir / "out").string();
    try {
        rs::run_analyze(opt);
        ADD_FAILURE() << "no error";
    } catch (const rs::Error & e) {
        EXPECT_NE(std::string(e.what()).find("given twice"), std::string::npos) << e.what();
    }
    rs::ExpertsOptions eo;
    eo.traces = opt.traces;
    eo.multilingual = true;
    eo.out = (dir / "e.json").string();
    EXPECT_THROW(rs::run_experts(eo), rs::Error);
}

// Defect 2 of issue 14: near uniform routing (normaliser log E − ½(H(a)+H(b)) ≈ 1e-4·log E) against a
// long-double recomputation from the stored shards; a float q gave ~1e-3 relative error here.
TEST(Analysis, NearUniformDivergenceMatchesLongDoubleReference) {
    const auto dir = tmp("near_uniform");
    const int n_moe = 2, e = 16, n_group = 12;
    write_synth_trace(dir / "t", parallel_seqs({"eng_Latn", "deu_Latn"}, n_group), "abc", n_moe, e, 2, 5,
                      0.05);
    rs::AnalyzeOptions opt;
    opt.traces = {(dir / "t").string()};
    opt.bootstrap_resamples = 10;
    opt.out_dir = (dir / "out").string();
    rs::run_analyze(opt);

    // reference: q (Eq. 1), H, D_JS (Eq. 6), D_H-JS (Eqs. 7–8) and the mean over pairs (Eq. 2) in long double
    const auto m = rs::read_manifest((dir / "t").string());
    std::map<std::pair<int64_t, int>, std::vector<std::vector<long double>>> q;  // (group, lang) → [slot][E]
    for (const int64_t k : rs::list_shards((dir / "t").string())) {
        const auto s = rs::read_shard((dir / "t").string(), m, k);
        for (const auto & sq : s.seqs) {
            auto & v = q[{sq.group, sq.lang}];
            v.assign(n_moe, std::vector<long double>(e, 0.0L));
            for (int l = 0; l < n_moe; ++l) {
                for (int64_t t = 0; t < sq.n_tok; ++t)
                    for (int x = 0; x < e; ++x) v[l][x] += (long double)s.p(sq.tok_begin + t, l)[x];
                for (auto & x : v[l]) x /= (long double)sq.n_tok;
            }
        }
    }
    auto H = [](const std::vector<long double> & a) {
        long double h = 0;
        for (auto x : a) h -= x * logl(x);
        return h;
    };
    std::map<int, long double> want;
    for (int l = 0; l < n_moe; ++l) {
        long double sum = 0;
        for (int g = 0; g < n_group; ++g) {
            const auto & a = q.at({g, 0})[l];
            const auto & b = q.at({g, 1})[l];
            long double js = 0;
            for (int x = 0; x < e; ++x) {
                const long double mm = 0.5L * (a[x] + b[x]);
                js += 0.5L * (a[x] * logl(a[x] / mm) + b[x] * logl(b[x] / mm));
            }
            const long double f = logl((long double)e) - 0.5L * (H(a) + H(b));
            ASSERT_GT(f, 1e-6L * logl((long double)e));
            ASSERT_LT(f, 1e-2L * logl((long double)e));  // near uniform indeed
            sum += js / f;
        }
        want[l + 1] = sum / n_group;
    }
    int n_checked = 0;
    for (const auto & r : csv_rows(dir / "out" / "divergence.csv"))
        if (r[2] == "deu_Latn") {
            const long double w = want.at(std::stoi(r[3]));
            EXPECT_NEAR(std::stod(r[4]) / (double)w, 1.0, 1e-8) << r[3];
            ++n_checked;
        }
    EXPECT_EQ(n_checked, n_moe);
    for (const auto & r : csv_rows(dir / "out" / "pairwise.csv"))
        if (r[2] == "eng_Latn" && r[3] == "deu_Latn") {
            const long double w = want.at(std::stoi(r[1]));
            EXPECT_NEAR(std::stod(r[4]) / (double)w, 1.0, 1e-8) << r[1];
        }
}

void expect_same(const std::vector<rs::SequenceLayerStats> & a,
                 const std::vector<rs::SequenceLayerStats> & b) {
    ASSERT_EQ(a.size(), b.size());
    for (size_t l = 0; l < a.size(); ++l) {
        EXPECT_EQ(a[l].n_tok, b[l].n_tok);
        EXPECT_EQ(a[l].importance, b[l].importance) << l;  // exact: same sums in the same order
        // H(p_t) in four interleaved partial sums: a different but fixed order
        EXPECT_NEAR(a[l].entropy_sum, b[l].entropy_sum, 1e-14 * std::max(1.0, std::abs(b[l].entropy_sum)))
            << l;
        EXPECT_EQ(a[l].consistency, b[l].consistency) << l;
        EXPECT_EQ(a[l].act_count, b[l].act_count) << l;
    }
}

// The one-pass summaries from shard bytes equal summarise_sequence bit for bit (the entropy sum to 1e-14
// relative, a different fixed order): f16 and f32 probs, zeros,
// duplicated ids in a row, E > 64 (two mask words), K = E, K = 40 (Jaccard ratios divided, not looked
// up), 0 and 1 token; bad ids raise rs::Error.
TEST(Analysis, RawSummariesEqualTheReferenceBitForBit) {
    rs::SplitMix64 rng(7);
    for (const auto & [e, k] : {std::pair{70, 5}, std::pair{8, 8}, std::pair{128, 8}, std::pair{70, 40}})
        for (const int64_t n_tok :
             {int64_t{0}, int64_t{1}, int64_t{2}, int64_t{37}, int64_t{300}, int64_t{1025}}) {
            const int n_moe = 3;
            const int64_t begin = 2, rows = (begin + n_tok + 1) * n_moe;
            std::vector<uint16_t> f16((size_t)(rows * e));
            std::vector<float> f32(f16.size()), w16(f16.size());
            for (size_t i = 0; i < f16.size(); ++i) {
                f16[i] = rs::uniform_below(rng, 5) == 0 ? 0 : (uint16_t)rs::uniform_below(rng, 0x3C01);
                w16[i] = rs::f16_bits_to_f32(f16[i]);
                f32[i] = rs::uniform_below(rng, 5) == 0 ? 0.f : (float)(rng.next() >> 40) * 0x1p-24f;
            }
            std::vector<int16_t> topk((size_t)(rows * k));
            for (auto & id : topk) id = (int16_t)rs::uniform_below(rng, (uint64_t)e);  // duplicates included
            const rs::SummaryOptions so{.seed = 3, .consistency_pairs = 50};
            for (const bool half : {true, false}) {
                const auto & ref_p = half ? w16 : f32;
                const auto want = rs::summarise_sequence(ref_p, topk, begin, n_tok, n_moe, e, k, 11, so);
                const rs::RawProbs raw =
                    half ? rs::RawProbs{.f16 = f16.data()} : rs::RawProbs{.f32 = f32.data()};
                expect_same(rs::summarise_sequence_raw(raw, topk.data(), begin, n_tok, n_moe, e, k, 11, so),
                            want);
                const std::vector<int> slots = {2, 0};
                std::vector<int64_t> counts(2 * (size_t)e);
                rs::activation_counts_raw(topk.data(), begin, n_tok, n_moe, k, e, slots, counts);
                for (size_t i = 0; i < 2; ++i)
                    EXPECT_EQ(std::vector<int64_t>(counts.begin() + (ptrdiff_t)(i * e),
                                                   counts.begin() + (ptrdiff_t)((i + 1) * e)),
                              want[(size_t)slots[i]].act_count);
            }
            if (n_tok > 0) {
                topk[(size_t)(begin * n_moe * k + 1)] = (int16_t)e;
                EXPECT_THROW(rs::summarise_sequence_raw({.f32 = f32.data()}, topk.data(), begin, n_tok, n_moe,
                                                        e, k, 11, so),
                             rs::Error);
            }
        }
}

// read_shard_raw checks the stored probabilities while it reads the shard chunk by chunk (1 MiB): one value
// that is not a probability — first, on either side of the first chunk boundary, inside the second chunk,
// last — is refused wherever it lies, in f16 and f32 shards whose digests match (only the check can tell);
// −0 is a probability.
TEST(Analysis, RawReaderRefusesABadProbabilityInAnyChunk) {
    rs::TraceManifest m;
    m.model_sha256 = "abc", m.arch = "olmoe", m.n_layer = 2, m.moe_layers = {0, 1};
    m.n_expert = 64, m.top_k = 2, m.gating = "softmax", m.corpus = "tsv:x.tsv";
    m.langs = {"eng_Latn"}, m.domains = {"flores"}, m.n_sequences = 2, m.seqs_per_shard = 2;
    const int64_t n_tok = 12000;  // 12000 × 2 × 64 values: 3 MiB in f16, 6 MiB in f32
    rs::TraceShard s;
    s.n_moe = 2, s.n_expert = 64, s.top_k = 2;
    s.seqs = {{0, -1, 0, 0, "a", 0, n_tok / 2}, {1, -1, 0, 0, "b", n_tok / 2, n_tok / 2}};
    s.tokens.assign((size_t)n_tok, 1);
    s.probs.assign((size_t)(n_tok * 2 * 64), 1.0f / 64.0f);
    for (int64_t r = 0; r < n_tok * 2; ++r) s.topk.push_back(0), s.topk.push_back(1);
    for (const std::string dtype : {"f16", "f32"}) {
        m.probs_dtype = dtype;
        const auto dir = tmp("probs_in_chunks_" + dtype);
        fs::create_directories(dir);
        const auto write = [&](const rs::TraceShard & sh) {  // with its digests in the manifest
            rs::set_shard_digests(m, 0, rs::write_shard(dir.string(), 0, m, sh));
            rs::write_manifest(dir.string(), m);
        };
        write(s);
        // where probs begin in the file, and the values around the 1 MiB boundary
        const uint64_t elem = dtype == "f16" ? 2 : 4;
        const uint64_t begin = tensor_bytes(slurp(dir / rs::shard_file_name(0)), "probs").first;
        const uint64_t at_boundary = ((1u << 20) - begin) / elem;  // the first value ending past 1 MiB
        const uint64_t n = s.probs.size();
        ASSERT_GT(begin + n * elem, 2u << 20);
        EXPECT_NO_THROW(rs::read_shard_raw(dir.string(), m, 0));
        for (const uint64_t i :
             {uint64_t{0}, at_boundary - 1, at_boundary, at_boundary + 1, at_boundary + 100000, n - 1})
            for (const float bad : {std::nanf(""), 1.5f, -0.25f}) {
                rs::TraceShard sh = s;
                sh.probs[i] = bad;
                write(sh);
                try {
                    rs::read_shard_raw(dir.string(), m, 0);
                    ADD_FAILURE() << dtype << ": value " << bad << " at " << i << " accepted";
                } catch (const rs::Error & e) {
                    EXPECT_NE(std::string(e.what()).find("a probability is not finite in [0, 1]"),
                              std::string::npos)
                        << e.what();
                }
            }
        rs::TraceShard sh = s;
        sh.probs[at_boundary] = -0.0f;
        write(sh);
        EXPECT_NO_THROW(rs::read_shard_raw(dir.string(), m, 0));
    }
}

// read_shard_raw gives the stored tensors: its f16 values widened equal read_shard's probs, same topk and
// sequences; without probs it reads no probs.
TEST(Analysis, RawShardMatchesReadShard) {
    const auto dir = tmp("raw_shard");
    write_synth_trace(dir / "t", parallel_seqs({"eng_Latn", "deu_Latn"}, 6), "abc", 3, 8, 2, 5, 0.0, "f16");
    const auto m = rs::read_manifest((dir / "t").string());
    ASSERT_EQ(m.probs_dtype, "f16");
    for (const int64_t k : rs::list_shards((dir / "t").string())) {
        const auto s = rs::read_shard((dir / "t").string(), m, k);
        const auto r = rs::read_shard_raw((dir / "t").string(), m, k);
        ASSERT_EQ(r.n_tok, s.n_tok());
        ASSERT_TRUE(r.probs_f16 && !r.probs_f32);
        for (size_t i = 0; i < s.probs.size(); ++i)
            ASSERT_EQ(rs::f16_bits_to_f32(r.probs_f16[i]), s.probs[i]) << i;
        EXPECT_EQ(std::vector<int16_t>(r.topk, r.topk + s.topk.size()), s.topk);
        ASSERT_EQ(r.seqs.size(), s.seqs.size());
        for (size_t i = 0; i < s.seqs.size(); ++i) {
            EXPECT_EQ(r.seqs[i].index, s.seqs[i].index);
            EXPECT_EQ(r.seqs[i].group, s.seqs[i].group);
            EXPECT_EQ(r.seqs[i].lang, s.seqs[i].lang);
            EXPECT_EQ(r.seqs[i].tok_begin, s.seqs[i].tok_begin);
            EXPECT_EQ(r.seqs[i].n_tok, s.seqs[i].n_tok);
        }
        const auto t = rs::read_shard_raw((dir / "t").string(), m, k, false);
        EXPECT_TRUE(!t.probs_f16 && !t.probs_f32 && t.topk);
    }
}

// `trace --store topk`: shards keep the selected experts' p only; analyze writes the tables the ids give
// (equal to those of the full trace) and no others, experts is unchanged, the rest is refused clearly.
TEST(Analysis, TopkStoreGivesWhatTheIdsGiveAndRefusesTheRest) {
    const auto dir = tmp("topk_store");
    const auto seqs = parallel_seqs({"eng_Latn", "deu_Latn", "fra_Latn"}, 8);
    write_synth_trace(dir / "full", seqs);
    write_synth_trace(dir / "topk", seqs, "abc", 3, 8, 2, 5, 0.0, "f32", "topk");
    const auto mf = rs::read_manifest((dir / "full").string()),
               mt = rs::read_manifest((dir / "topk").string());
    EXPECT_EQ(mf.store, "full");
    ASSERT_EQ(mt.store, "topk");
    EXPECT_FALSE(rs::manifest_to_json(mf)["store"].contains("content"));  // full manifests are unchanged
    for (const int64_t k : rs::list_shards((dir / "topk").string())) {
        const auto f = rs::read_shard((dir / "full").string(), mf, k);
        const auto t = rs::read_shard((dir / "topk").string(), mt, k);
        EXPECT_TRUE(t.probs.empty());
        ASSERT_EQ(t.topk_probs.size(), f.topk.size());
        EXPECT_EQ(t.topk, f.topk);
        for (size_t r = 0; r < f.topk.size(); ++r)  // p of the selected expert, as in the full trace
            EXPECT_EQ(t.topk_probs[r], f.probs[r / 2 * 8 + (size_t)f.topk[r]]) << r;
        EXPECT_LT(fs::file_size(dir / "topk" / rs::shard_file_name(k)),
                  fs::file_size(dir / "full" / rs::shard_file_name(k)));
        EXPECT_THROW(rs::read_shard_raw((dir / "topk").string(), mt, k), rs::Error);
    }
    rs::AnalyzeOptions opt;
    opt.bootstrap_resamples = 10;
    opt.middle = rs::parse_layer_range("1:3");  // no automatic range without divergence: the same for both
    opt.traces = {(dir / "full").string()};
    opt.out_dir = (dir / "a_full").string();
    EXPECT_FALSE(rs::run_analyze(opt).topk_only);
    opt.traces = {(dir / "topk").string()};
    opt.out_dir = (dir / "a_topk").string();
    fs::create_directories(opt.out_dir);
    std::ofstream(dir / "a_topk" / "divergence.csv") << "stale\n";
    EXPECT_TRUE(rs::run_analyze(opt).topk_only);
    for (const char * f : {"consistency.csv", "isolation.csv", "experts_rise.csv"})
        EXPECT_EQ(slurp(dir / "a_topk" / f), slurp(dir / "a_full" / f)) << f;
    for (const char * f :
         {"divergence.csv", "entropy.csv", "pairwise.csv", "clusters.json", "domains.csv", "correlation.csv"})
        EXPECT_FALSE(fs::exists(dir / "a_topk" / f)) << f;
    const auto sf = nlohmann::json::parse(slurp(dir / "a_full" / "summary.json"));
    const auto st = nlohmann::json::parse(slurp(dir / "a_topk" / "summary.json"));
    EXPECT_EQ(st["store"], "topk");
    EXPECT_EQ(st["not_computed"].size(), 6u);
    EXPECT_EQ(st["languages"]["deu_Latn"]["consistency"], sf["languages"]["deu_Latn"]["consistency"]);
    EXPECT_TRUE(st["languages"]["deu_Latn"]["divergence"].is_null());
    EXPECT_TRUE(st["languages"]["deu_Latn"]["entropy"].is_null());
    opt.scores = (dir / "scores.tsv").string();
    std::ofstream(opt.scores) << "lang\tscore\ndeu_Latn\t1\n";
    try {
        rs::run_analyze(opt);
        ADD_FAILURE() << "no error";
    } catch (const rs::Error & e) {
        EXPECT_NE(std::string(e.what()).find("--store topk"), std::string::npos) << e.what();
    }
    rs::ExpertsOptions eo;
    eo.multilingual = true;
    eo.tau = 0.0;
    for (const char * t : {"full", "topk"}) {
        eo.traces = {(dir / t).string()};
        eo.out = (dir / (std::string("e_") + t + ".json")).string();
        rs::run_experts(eo);
    }
    EXPECT_EQ(slurp(dir / "e_full.csv"), slurp(dir / "e_topk.csv"));
}

// analyze --pooling gate (the authors' top-k renormalised weights) needs only the ids and their p: a
// --store topk trace gives every table, equal to gate pooling on the full trace of the same routing.
// --pooling softmax with a topk trace is refused naming the trace; the options land in summary.json.
TEST(Analysis, GatePoolingWorksFromTopkTracesAndOptionsAreRecorded) {
    const auto dir = tmp("gate_pooling");
    const auto seqs = parallel_seqs({"eng_Latn", "deu_Latn", "fra_Latn"}, 8);
    write_synth_trace(dir / "full", seqs);
    write_synth_trace(dir / "topk", seqs, "abc", 3, 8, 2, 5, 0.0, "f32", "topk");
    rs::AnalyzeOptions opt;
    opt.bootstrap_resamples = 10;
    opt.pooling = "gate";
    opt.entropy = "pooled";
    opt.normaliser = "clamp";
    for (const char * t : {"full", "topk"}) {
        opt.traces = {(dir / t).string()};
        opt.out_dir = (dir / (std::string("a_") + t)).string();
        EXPECT_FALSE(rs::run_analyze(opt).topk_only) << t;
    }
    for (const char * f :
         {"divergence.csv", "entropy.csv", "pairwise.csv", "consistency.csv", "clusters.json"}) {
        std::string full = slurp(dir / "a_full" / f);  // divergence.csv names the trace
        for (size_t at; (at = full.find((dir / "full").string())) != std::string::npos;)
            full.replace(at, (dir / "full").string().size(), (dir / "topk").string());
        EXPECT_EQ(slurp(dir / "a_topk" / f), full) << f;
    }
    const auto sj = nlohmann::json::parse(slurp(dir / "a_topk" / "summary.json"));
    EXPECT_EQ(sj["options"],
              nlohmann::json({{"pooling", "gate"}, {"entropy", "pooled"}, {"normaliser", "clamp"}}));
    EXPECT_FALSE(sj.contains("not_computed"));
    EXPECT_FALSE(sj["languages"]["deu_Latn"]["divergence"].is_null());

    // defaults recorded; gate pooling changes the divergence of the full trace
    rs::AnalyzeOptions def;
    def.bootstrap_resamples = 10;
    def.traces = {(dir / "full").string()};
    def.out_dir = (dir / "a_default").string();
    rs::run_analyze(def);
    const auto dj = nlohmann::json::parse(slurp(dir / "a_default" / "summary.json"));
    EXPECT_EQ(dj["options"],
              nlohmann::json({{"pooling", "softmax"}, {"entropy", "token"}, {"normaliser", "undefined"}}));
    EXPECT_NE(slurp(dir / "a_default" / "divergence.csv"), slurp(dir / "a_full" / "divergence.csv"));

    opt.pooling = "softmax";
    opt.traces = {(dir / "topk").string()};
    try {
        rs::run_analyze(opt);
        ADD_FAILURE() << "softmax pooling accepted on a --store topk trace";
    } catch (const rs::Error & e) {
        EXPECT_EQ(std::string(e.what()).rfind(opt.traces[0] + ": recorded with --store topk", 0), 0u)
            << e.what();
    }
    opt.pooling = "mean";
    EXPECT_THROW(rs::run_analyze(opt), rs::Error);
}

// --entropy pooled: the mean over a language's sequences of H(q_i) (the authors' analyze_routing_entropy),
// against a recomputation from read_shard; --entropy token stays the mean over tokens of H(p_t).
TEST(Analysis, PooledEntropyIsTheMeanOverSequencesOfHq) {
    const auto dir = tmp("pooled_entropy");
    write_synth_trace(dir / "t", parallel_seqs({"eng_Latn", "deu_Latn"}, 7));
    const auto m = rs::read_manifest((dir / "t").string());
    const int n_moe = 3, e = 8;
    std::map<std::pair<int, int>, std::pair<double, int>> pooled;  // (lang, slot) → (Σ H(q), n)
    std::map<std::pair<int, int>, std::pair<double, int64_t>> token;
    for (const int64_t k : rs::list_shards((dir / "t").string())) {
        const auto s = rs::read_shard((dir / "t").string(), m, k);
        for (const auto & sq : s.seqs)
            for (int l = 0; l < n_moe; ++l) {
                std::vector<double> q(e, 0.0);
                for (int64_t t = 0; t < sq.n_tok; ++t) {
                    const auto p = s.p(sq.tok_begin + t, l);
                    double h = 0;
                    for (int x = 0; x < e; ++x) {
                        q[(size_t)x] += (double)p[(size_t)x];
                        if (p[(size_t)x] > 0) h -= (double)p[(size_t)x] * std::log((double)p[(size_t)x]);
                    }
                    token[{sq.lang, l}].first += h, ++token[{sq.lang, l}].second;
                }
                double h = 0;
                for (auto & v : q) {
                    v /= (double)sq.n_tok;
                    if (v > 0) h -= v * std::log(v);
                }
                pooled[{sq.lang, l}].first += h, ++pooled[{sq.lang, l}].second;
            }
    }
    for (const char * mode : {"pooled", "token"}) {
        rs::AnalyzeOptions opt;
        opt.traces = {(dir / "t").string()};
        opt.bootstrap_resamples = 10;
        opt.entropy = mode;
        opt.out_dir = (dir / mode).string();
        rs::run_analyze(opt);
        int n = 0;
        for (const auto & r : csv_rows(dir / mode / "entropy.csv")) {
            const int lang = r[1] == "eng_Latn" ? 0 : 1, slot = std::stoi(r[2]) - 1;
            const double want = std::string(mode) == "pooled"
                                    ? pooled.at({lang, slot}).first / pooled.at({lang, slot}).second
                                    : token.at({lang, slot}).first / (double)token.at({lang, slot}).second;
            EXPECT_NEAR(std::stod(r[3]), want, 1e-9 * want) << mode << " " << r[1] << " " << r[2];
            ++n;
        }
        EXPECT_EQ(n, 2 * n_moe) << mode;
    }
    EXPECT_NE(slurp(dir / "pooled" / "entropy.csv"), slurp(dir / "token" / "entropy.csv"));
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

// analyze and experts (deu vs eng) over trace t, writing under dir: the two checksum tests' runs.
struct ChecksumRuns {
    rs::AnalyzeOptions analyze;
    rs::ExpertsOptions experts;
};
ChecksumRuns checksum_runs(const fs::path & dir, const fs::path & t) {
    ChecksumRuns r;
    r.analyze.traces = {t.string()};
    r.analyze.bootstrap_resamples = 10;
    r.analyze.out_dir = (dir / "out").string();
    r.experts.traces = {t.string()};
    r.experts.target = "lang=deu_Latn";
    r.experts.baseline = "lang=eng_Latn";
    r.experts.out = (dir / "e.json").string();
    return r;
}

// Flips the lowest bit of the byte at `at` in file p.
void flip_bit(const fs::path & p, uint64_t at) {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg((std::streamoff)at);
    char c = 0;
    f.read(&c, 1);
    c ^= 1;
    f.seekp((std::streamoff)at);
    f.write(&c, 1);
}

// Issue 14: the fast reader verifies each shard as read_shard does: by its XXH3-128 where the manifest
// holds one (as `trace` writes it), else by its SHA-256 (traces written before XXH3). A trace whose
// manifest records only one of the two is analysed; one flipped byte in a shard's probs — still a valid
// probability, so only the checksum can tell — makes analyze and experts refuse, naming the file.
TEST(Analysis, CorruptShardByteIsRefusedByTheFastReader) {
    for (const bool by_xxh3 : {false, true}) {
        SCOPED_TRACE(by_xxh3 ? "XXH3-128" : "SHA-256");
        const auto dir = tmp(by_xxh3 ? "checksum_xxh3" : "checksum_sha");
        const auto t = dir / "t";
        write_synth_trace(t, parallel_seqs({"eng_Latn", "deu_Latn"}, 6), "abc", 3, 8, 2, 5, 0.0, "f16");
        auto m = rs::read_manifest(t.string());
        for (const int64_t k : rs::list_shards(t.string())) {
            const std::string bytes = slurp(t / rs::shard_file_name(k));
            if (by_xxh3)
                m.shard_xxh3_128[k] = rs::xxh3_128_hex(bytes.data(), bytes.size());
            else
                m.shard_sha256[k] = rs::sha256_hex(bytes.data(), bytes.size());
        }
        rs::write_manifest(t.string(), m);
        const auto [opt, eo] = checksum_runs(dir, t);
        EXPECT_NO_THROW(rs::run_analyze(opt));
        EXPECT_NO_THROW(rs::run_experts(eo));
        EXPECT_NO_THROW(rs::read_shard(t.string(), m, 1));

        const fs::path shard = t / rs::shard_file_name(1);
        flip_bit(shard,
                 fs::file_size(shard) - 40);  // inside probs, the last tensor: only the checksum can tell
        for (const int run : {0, 1, 2}) {     // no index-part digests here: experts reads the whole file
            try {
                if (run == 0) rs::run_analyze(opt);
                if (run == 1) rs::run_experts(eo);
                if (run == 2) rs::read_shard(t.string(), m, 1);  // the other reader
                ADD_FAILURE() << "a corrupt shard was accepted (run " << run << ")";
            } catch (const rs::Error & e) {
                const std::string what = e.what();
                EXPECT_EQ(what.rfind(shard.string() + ": checksum does not match manifest.json", 0), 0u)
                    << what;
            }
        }
    }
}

// Issue 14: `experts` reads and verifies only a shard's index part (length, header, seq_*, tokens, topk),
// which the writer puts before probs, so its bytes no longer scale with E. The digests (SHA-256 in traces
// written before XXH3-128, XXH3-128 now) are recomputed here from the files (the prefix up to the end of
// topk, found in the header) and must equal what write_shard returns; a flipped byte in probs is then
// refused by analyze but not seen by experts (same output), one in topk is refused by both.
TEST(Analysis, ExpertsVerifiesOnlyTheIndexPartItReads) {
    for (const bool by_xxh3 : {false, true}) {
        SCOPED_TRACE(by_xxh3 ? "XXH3-128" : "SHA-256");
        const auto dir = tmp(by_xxh3 ? "index_part_xxh3" : "index_part_sha");
        const auto t = dir / "t";
        write_synth_trace(t, parallel_seqs({"eng_Latn", "deu_Latn"}, 6), "abc", 3, 8, 2, 5, 0.0, "f16");
        auto m = rs::read_manifest(t.string());
        std::map<int64_t, std::pair<uint64_t, uint64_t>> topk_at, probs_at;  // file offsets [begin, end)
        for (const int64_t k : rs::list_shards(t.string())) {
            const std::string bytes = slurp(t / rs::shard_file_name(k));
            topk_at[k] = tensor_bytes(bytes, "topk"), probs_at[k] = tensor_bytes(bytes, "probs");
            ASSERT_LE(topk_at[k].second, probs_at[k].first) << "the index part comes first";
            if (by_xxh3) {
                m.shard_xxh3_128[k] = rs::xxh3_128_hex(bytes.data(), bytes.size());
                m.shard_index_xxh3_128[k] = rs::xxh3_128_hex(bytes.data(), topk_at[k].second);
            } else {
                m.shard_sha256[k] = rs::sha256_hex(bytes.data(), bytes.size());
                m.shard_index_sha256[k] = rs::sha256_hex(bytes.data(), topk_at[k].second);
            }
        }
        rs::write_manifest(t.string(), m);
        {  // the writer's own digests are these
            fs::create_directories(dir / "w");
            const auto d = rs::write_shard((dir / "w").string(), 0, m, rs::read_shard(t.string(), m, 0));
            EXPECT_EQ(by_xxh3 ? d.file_xxh3 : d.file, by_xxh3 ? m.shard_xxh3_128[0] : m.shard_sha256[0]);
            EXPECT_EQ(by_xxh3 ? d.index_xxh3 : d.index,
                      by_xxh3 ? m.shard_index_xxh3_128[0] : m.shard_index_sha256[0]);
            EXPECT_NE(d.index, d.file);
            EXPECT_NE(d.index_xxh3, d.file_xxh3);
        }
        const auto [opt, eo] = checksum_runs(dir, t);
        ASSERT_NO_THROW(rs::run_analyze(opt));
        ASSERT_NO_THROW(rs::run_experts(eo));
        const std::string before = slurp(dir / "e.json");

        const fs::path shard = t / rs::shard_file_name(1);
        const auto refusal = [&](const std::function<void()> & run) {
            try {
                run();
            } catch (const rs::Error & e) {
                return std::string(e.what());
            }
            return std::string();
        };
        const std::string mismatch = shard.string() + ": checksum does not match manifest.json";
        flip_bit(shard,
                 probs_at[1].first + 6);  // a low byte: still a probability, only the checksum can tell
        EXPECT_EQ(refusal([&] { rs::run_analyze(opt); }).rfind(mismatch, 0), 0u);
        fs::remove(dir / "e.json");
        EXPECT_EQ(refusal([&] { rs::run_experts(eo); }), "");
        EXPECT_EQ(slurp(dir / "e.json"), before);

        flip_bit(shard, topk_at[1].first + 2);  // an id's low bit: still in range
        EXPECT_EQ(refusal([&] { rs::run_experts(eo); }).rfind(mismatch, 0), 0u);
    }
}

}  // namespace
