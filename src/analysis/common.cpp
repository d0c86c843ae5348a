// Shared pieces of the analysis commands: loading and checking a set of traces, layer ranges, sequence
// selectors (SPEC syntax, analysis.h), CSV building and atomic writes.
#include <cmath>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include <fmt/format.h>

#include "analysis_internal.h"
#include "routescope/common.h"

namespace rs {

namespace fs = std::filesystem;

LayerRange parse_layer_range(const std::string & s) {
    auto to_int = [&](const std::string & t) {
        size_t used = 0;
        int v = -1;
        try {
            v = std::stoi(t, &used);
        } catch (const std::exception &) {
            used = 0;
        }
        if (t.empty() || used != t.size() || v < 0)
            throw Error("bad layer range '" + s + "': expected FIRST:LAST (block indices, inclusive)");
        return v;
    };
    const size_t colon = s.find(':');
    LayerRange r;
    if (colon == std::string::npos) {
        r.first = r.last = to_int(s);
    } else {
        r.first = to_int(s.substr(0, colon));
        r.last = to_int(s.substr(colon + 1));
    }
    if (r.last < r.first) throw Error("bad layer range '" + s + "': the last layer is before the first");
    return r;
}

SeqSelector SeqSelector::parse(const std::string & spec) {
    SeqSelector sel;
    sel.text = spec;
    if (spec == "*" || spec == "all") return sel;
    size_t b = 0;
    while (b <= spec.size()) {
        const size_t e = std::min(spec.find(',', b), spec.size());
        const std::string term = spec.substr(b, e - b);
        b = e + 1;
        if (term.empty()) continue;
        const size_t eq = term.find('=');
        if (eq == std::string::npos)
            throw Error("bad selector term '" + term + "' in '" + spec +
                        "': expected KEY=VALUE with KEY lang, domain or trace");
        Term t;
        t.key = term.substr(0, eq);
        if (t.key != "lang" && t.key != "domain" && t.key != "trace")
            throw Error("bad selector key '" + t.key + "' in '" + spec + "': use lang, domain or trace");
        std::string v = term.substr(eq + 1);
        if (!v.empty() && v[0] == '!') t.negate = true, v = v.substr(1);
        if (v.empty()) throw Error("empty value in selector term '" + term + "'");
        if (v != "*") {
            size_t vb = 0;
            while (vb <= v.size()) {
                const size_t ve = std::min(v.find('|', vb), v.size());
                if (ve > vb) t.values.push_back(v.substr(vb, ve - vb));
                vb = ve + 1;
            }
        }
        sel.terms.push_back(std::move(t));
    }
    if (sel.terms.empty()) throw Error("empty sequence selector '" + spec + "'");
    return sel;
}

bool SeqSelector::matches(const std::string & lang, const std::string & domain, int trace_index) const {
    for (const auto & t : terms) {
        const std::string v = t.key == "lang"     ? lang
                              : t.key == "domain" ? domain
                                                  : std::to_string(trace_index);
        bool in = t.values.empty();  // '*'
        for (const auto & x : t.values) in = in || x == v;
        if (in == t.negate) return false;
    }
    return true;
}

namespace analysis {

TraceSet load_trace_set(const std::vector<std::string> & dirs) {
    if (dirs.empty()) throw Error("no trace directory given");
    TraceSet ts;
    std::vector<fs::path> seen;  // canonical paths: the same trace given twice would count everything twice
    for (const auto & d : dirs) {
        if (!fs::is_directory(d)) throw Error("trace directory not found: " + d);
        const fs::path canon = fs::weakly_canonical(d);
        for (size_t i = 0; i < seen.size(); ++i)
            if (seen[i] == canon)
                throw Error(d + ": the same trace is given twice (as " + dirs[i] +
                            " too; give each trace once)");
        seen.push_back(canon);
        ts.dirs.push_back(d);
        ts.manifests.push_back(read_manifest(d));
        const auto & m = ts.manifests.back();
        const auto shards = list_shards(d);
        int64_t n_present = 0;  // shards 0..n-1; a stray shard index beyond them is corruption
        for (const int64_t k : shards) {
            if (k >= trace_n_shards(m))
                throw Error(
                    fmt::format("{}: holds {} but manifest.json describes {} shards (n_sequences {}); "
                                "(re-record the trace)",
                                d, shard_file_name(k), trace_n_shards(m), m.n_sequences));
            ++n_present;
        }
        if (n_present != trace_n_shards(m))
            throw Error(
                fmt::format("{}: trace is incomplete ({} of {} shards) (finish it with `routescope "
                            "trace --resume`)",
                            d, n_present, trace_n_shards(m)));
    }
    const auto & a = ts.first();
    for (size_t i = 1; i < ts.manifests.size(); ++i) {
        const auto & b = ts.manifests[i];
        if (a.model_sha256 != b.model_sha256 || a.arch != b.arch || a.moe_layers != b.moe_layers ||
            a.n_expert != b.n_expert || a.top_k != b.top_k)
            throw Error("traces of different models: " + dirs[0] + " (" + a.arch + ", sha256 " +
                        a.model_sha256.substr(0, 12) + ") and " + dirs[i] + " (" + b.arch + ", sha256 " +
                        b.model_sha256.substr(0, 12) + ")");
    }
    ts.model = !a.model_name.empty() ? a.model_name : fs::path(a.model_path).stem().string();
    ts.n_moe = (int)a.moe_layers.size();
    ts.n_expert = a.n_expert;
    ts.top_k = a.top_k;
    ts.moe_layers = a.moe_layers;
    if (ts.n_moe <= 0 || ts.n_expert <= 0 || ts.top_k <= 0)
        throw Error("trace " + dirs[0] + " has no MoE layer, expert or top-k in its manifest");
    return ts;
}

std::vector<int> select_slots(const TraceSet & ts, const std::optional<LayerRange> & range,
                              const char * what) {
    if (range && range->last >= ts.first().n_layer)
        throw Error(fmt::format("{} {}:{} is outside the model's blocks 0..{} (give a range inside them)",
                                what, range->first, range->last, ts.first().n_layer - 1));
    std::vector<int> slots;
    for (int s = 0; s < ts.n_moe; ++s)
        if (!range || range->contains(ts.moe_layers[(size_t)s])) slots.push_back(s);
    if (slots.empty())
        throw Error(fmt::format("{} {}:{} contains no MoE layer of the model (MoE layers {}..{})", what,
                                range->first, range->last, ts.moe_layers.front(), ts.moe_layers.back()));
    return slots;
}

void for_each_shard(const std::string & dir, const TraceManifest & m, int n_threads,
                    const std::function<void(int64_t, const TraceShard &)> & fn) {
    const auto shards = list_shards(dir);
    if (n_threads == 1) {
        for (const int64_t k : shards) fn(k, read_shard(dir, m, k));
        return;
    }
    std::future<TraceShard> next;
    if (!shards.empty()) next = std::async(std::launch::async, [&] { return read_shard(dir, m, shards[0]); });
    for (size_t i = 0; i < shards.size(); ++i) {
        const TraceShard cur = next.get();  // rethrows a read error
        if (i + 1 < shards.size())
            next = std::async(std::launch::async, [&, k = shards[i + 1]] { return read_shard(dir, m, k); });
        try {
            fn(shards[i], cur);
        } catch (...) {
            if (next.valid()) next.wait();  // do not leave the reader running past the caller's state
            throw;
        }
    }
}

void for_each_raw_shard(const std::string & dir, const TraceManifest & m, int n_threads, bool with_probs,
                        const std::function<void(int64_t, const RawShard &)> & fn) {
    // Reading a shard is one sequential pass that also hashes it (SHA-256, ~1.5–2 GB/s a core): with
    // several threads the next `depth` shards are read concurrently while fn runs, so hashing is spread
    // over the cores instead of bounding the pass. Buffers are recycled (after the first depth + 1 shards
    // reading allocates nothing and touches no fresh page); at most depth + 1 shards are in memory.
    const auto shards = list_shards(dir);
    RawShard spare;
    if (n_threads <= 0) n_threads = (int)std::max(1u, std::thread::hardware_concurrency());
    if (n_threads == 1) {
        for (const int64_t k : shards) {
            RawShard cur = read_shard_raw(dir, m, k, with_probs, &spare);
            fn(k, cur);
            spare = std::move(cur);
        }
        return;
    }
    const size_t depth = (size_t)std::min(n_threads, 4);
    std::deque<std::future<RawShard>> next;
    auto read_ahead = [&](int64_t k, RawShard buf) {
        next.push_back(
            std::async(std::launch::async, [&dir, &m, k, with_probs, b = std::move(buf)]() mutable {
                return read_shard_raw(dir, m, k, with_probs, &b);
            }));
    };
    auto drain = [&]() {  // do not leave a reader running past the caller's state
        for (auto & f : next)
            if (f.valid()) f.wait();
    };
    for (size_t i = 0; i < shards.size() && i < depth; ++i) read_ahead(shards[i], RawShard{});
    for (size_t i = 0; i < shards.size(); ++i) {
        RawShard cur;
        try {
            cur = next.front().get();  // rethrows a read error
        } catch (...) {
            next.pop_front();
            drain();
            throw;
        }
        next.pop_front();
        if (i + depth < shards.size()) read_ahead(shards[i + depth], std::move(spare));
        try {
            fn(shards[i], cur);
        } catch (...) {
            drain();
            throw;
        }
        spare = std::move(cur);
    }
}

Csv::Csv(const std::vector<std::string> & header) {
    for (const auto & h : header) field(h);
    end_row();
}

void Csv::sep() {
    if (!row_start_) buf_ += ',';
    row_start_ = false;
}

Csv & Csv::field(const std::string & s) {
    sep();
    if (s.find_first_of(",\"\n\r") == std::string::npos) {
        buf_ += s;
        return *this;
    }
    buf_ += '"';
    for (char c : s) {
        if (c == '"') buf_ += '"';
        buf_ += c;
    }
    buf_ += '"';
    return *this;
}

Csv & Csv::field(int64_t v) {
    sep();
    buf_ += std::to_string(v);
    return *this;
}

Csv & Csv::field(double v) {
    sep();
    if (std::isfinite(v)) buf_ += fmt::format("{:.10g}", v);
    return *this;
}

Csv & Csv::field(std::optional<double> v) {
    if (v) return field(*v);
    sep();
    return *this;
}

void Csv::end_row() {
    buf_ += '\n';
    row_start_ = true;
}

std::string join(const std::vector<std::string> & v, const std::string & sep) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
    return s;
}

}  // namespace analysis
}  // namespace rs
