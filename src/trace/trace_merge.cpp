// Parts of one trace recorded on several machines (`trace --part I/N`), and their merge
// (`trace merge DIR… --out DIR`); see routescope/trace.h, "Parts".
//
// A part records whole shards, the same shards a single-machine run writes (same packing: batches
// never cross a shard), so the merged directory is the single-machine trace: the same shard files
// byte for byte and the same manifest (options.part dropped). The merge checks that the parts belong
// together (model hash, corpus content hash, recording options), that they are the N parts of one
// split, each complete, and copies every shard after checking its checksum.
#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "routescope/common.h"
#include "routescope/file_io.h"
#include "routescope/trace.h"

namespace fs = std::filesystem;

namespace rs {

TracePart parse_trace_part(const std::string & spec) {
    int i = 0, n = 0, used = 0;
    if (std::sscanf(spec.c_str(), "%d/%d%n", &i, &n, &used) != 2 || used != (int)spec.size() || n < 1 ||
        i < 1 || i > n)
        throw Error(fmt::format("--part '{}': expected I/N with 1 <= I <= N (e.g. 2/4)", printable(spec)));
    return {i, n};
}

std::pair<int64_t, int64_t> trace_part_shards(int64_t n_shards, const TracePart & p) {
    return {n_shards * (p.index - 1) / p.count, n_shards * p.index / p.count};
}

TracePart manifest_part(const TraceManifest & m) {
    if (!m.options.is_object() || !m.options.contains("part")) return {1, 1};
    const auto & p = m.options["part"];
    if (!p.is_object() || !p.contains("index") || !p.contains("count") || !p["index"].is_number_integer() ||
        !p["count"].is_number_integer())
        throw Error("\"options.part\" must be {\"index\": I, \"count\": N}");
    const TracePart part{p["index"].get<int>(), p["count"].get<int>()};
    if (part.count < 1 || part.index < 1 || part.index > part.count)
        throw Error(
            fmt::format("\"options.part\" is {}/{}, not I/N with 1 <= I <= N", part.index, part.count));
    return part;
}

// The manifest of the whole run a part belongs to: options.part dropped, no shard checksums.
static std::string whole_run_identity(TraceManifest m) {
    m.options.erase("part");
    m.options.erase("threads");  // threads do not change what is recorded (prepare_trace_dir)
    m.options.erase("rpc");
    clear_shard_digests(m);
    m.tool_version.clear();
    m.model_path.clear();
    return manifest_to_json(m).dump();
}

TraceManifest merge_traces(const std::vector<std::string> & dirs, const std::string & out) {
    if (dirs.empty()) throw Error("trace merge: no part directories given");
    std::vector<TraceManifest> ms;
    for (const auto & d : dirs) ms.push_back(read_manifest(d));
    const TracePart first = manifest_part(ms[0]);
    std::vector<int> seen((size_t)first.count + 1, -1);
    const std::string id0 = whole_run_identity(ms[0]);
    for (size_t i = 0; i < ms.size(); ++i) {
        const auto & m = ms[i];
        const TracePart p = manifest_part(m);
        if (m.model_sha256 != ms[0].model_sha256)
            throw Error(fmt::format(
                "{}: a trace of another model (sha256 {}… vs {}… in {}) (merge only the parts "
                "of one run)",
                dirs[i], m.model_sha256.substr(0, 12), ms[0].model_sha256.substr(0, 12), dirs[0]));
        if (m.corpus_sha256 != ms[0].corpus_sha256 || m.corpus != ms[0].corpus)
            throw Error(
                fmt::format("{}: recorded from another corpus or corpus content than {} (merge only the "
                            "parts of one run)",
                            dirs[i], dirs[0]));
        if (p.count != first.count)
            throw Error(
                fmt::format("{}: part {}/{} of another split than {} ({}/{}) (merge the parts of one "
                            "--part I/N split)",
                            dirs[i], p.index, p.count, dirs[0], first.index, first.count));
        if (whole_run_identity(m) != id0)
            throw Error(
                fmt::format("{}: recorded with other options than {} (batch, max tokens, store, dtype, "
                            "steering …) (record every part with the same options)",
                            dirs[i], dirs[0]));
        if (seen[(size_t)p.index] >= 0)
            throw Error(fmt::format("{}: part {}/{} is also {} (give each part once)", dirs[i], p.index,
                                    p.count, dirs[(size_t)seen[(size_t)p.index]]));
        seen[(size_t)p.index] = (int)i;
    }
    for (int k = 1; k <= first.count; ++k)
        if (seen[(size_t)k] < 0)
            throw Error(fmt::format("trace merge: part {}/{} is missing (give all {} part directories)", k,
                                    first.count, first.count));

    // every shard of every part present and intact before anything is written
    const int64_t n_shards = trace_n_shards(ms[0]);
    TraceManifest merged = ms[0];
    merged.options.erase("part");
    clear_shard_digests(merged);
    std::vector<std::pair<std::string, int64_t>> sources(n_shards);  // shard → part directory
    for (size_t i = 0; i < ms.size(); ++i) {
        const auto [lo, hi] = trace_part_shards(n_shards, manifest_part(ms[i]));
        for (int64_t k = lo; k < hi; ++k) {
            const auto it = ms[i].shard_sha256.find(k);
            const std::string path = (fs::path(dirs[i]) / shard_file_name(k)).string();
            if (it == ms[i].shard_sha256.end() || !fs::exists(path))
                throw Error(
                    fmt::format("{}: shard {} of this part is not recorded (finish the part with "
                                "`routescope trace --part … --resume`)",
                                dirs[i], k));
            copy_shard_digests(ms[i], merged, k);
            sources[(size_t)k] = {dirs[i], k};
        }
    }

    if (fs::exists(fs::path(out) / "manifest.json") || !list_shards(out).empty())
        throw Error(fmt::format("{}: already holds a trace (choose an empty --out)", out));
    if (fs::exists(out) && !fs::is_directory(out))
        throw Error(fmt::format("{}: exists and is not a directory (choose another --out)", out));
    fs::create_directories(out);
    remove_stale_temporaries(out);
    for (int64_t k = 0; k < n_shards; ++k) {
        const std::string src = (fs::path(sources[(size_t)k].first) / shard_file_name(k)).string();
        const std::string bytes = read_file(src);
        if (sha256_hex(bytes.data(), bytes.size()) != merged.shard_sha256[k])
            throw Error(
                fmt::format("{}: checksum does not match its manifest.json (corrupt or replaced; "
                            "re-record it with `routescope trace --part … --resume`)",
                            src));
        write_file_atomic((fs::path(out) / shard_file_name(k)).string(), bytes);
    }
    write_manifest(out, merged);  // last: a merge killed midway leaves no manifest, never a wrong one
    return merged;
}

}  // namespace rs
