// read_shard_raw (trace.h): a shard's tensors as stored, for the one-pass analysis. Reads the safetensors
// header (st_read_header), checks every tensor it uses against the header and the manifest (dtype, shape,
// byte range inside the file), then reads the byte ranges it needs into one 8-byte-aligned buffer.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "routescope/common.h"
#include "routescope/trace.h"
#include "safetensors.h"
#include "shard_check.h"

namespace rs {

namespace fs = std::filesystem;

RawShard read_shard_raw(const std::string & dir, const TraceManifest & m, int64_t shard, bool with_probs,
                        RawShard * reuse) {
    const std::string path = (fs::path(dir) / shard_file_name(shard)).string();
    const nlohmann::json header = st_read_header(path);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(fmt::format("{}: cannot open (check the trace directory)", path));
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    uint64_t n_header = 0;
    if (::pread(fd, &n_header, 8, 0) != 8) throw Error(fmt::format("{}: not a safetensors file", path));
    const uint64_t data_start = 8 + n_header;
    const uint64_t file_size = (uint64_t)fs::file_size(path);

    if (with_probs && m.store == "topk")
        throw Error(
            fmt::format("{}: recorded with --store topk, it holds no full routing distribution p_t "
                        "(record with --store full for divergence and entropy)",
                        path));
    RawShard s;
    s.n_moe = (int)m.moe_layers.size(), s.n_expert = m.n_expert, s.top_k = m.top_k;
    struct Want {
        const char * name;
        const char * dtype;
        uint64_t begin = 0, size = 0, at = 0;  // byte range in the data section; offset in s.bytes
        std::vector<int64_t> shape;
    };
    const char * pd = m.probs_dtype == "f16" ? "F16" : "F32";
    std::vector<Want> want = {{"seq_index", "I64"},  {"seq_group", "I64"},  {"seq_lang", "I32"},
                              {"seq_domain", "I32"}, {"seq_offset", "I64"}, {"topk", "I16"}};
    if (with_probs) want.push_back({"probs", pd});
    uint64_t total = 0;
    for (auto & w : want) {
        if (!header.contains(w.name))
            throw Error(fmt::format("{}: tensor {} is missing (re-record the trace)", path, w.name));
        const auto & t = header.at(w.name);
        if (!t.contains("dtype") || t["dtype"] != w.dtype || !t.contains("shape") ||
            !t.contains("data_offsets"))
            throw Error(fmt::format("{}: tensor {} is not {} (re-record the trace)", path, w.name, w.dtype));
        w.shape = t["shape"].get<std::vector<int64_t>>();
        const auto off = t["data_offsets"].get<std::vector<uint64_t>>();
        uint64_t n = st_dtype_size(w.dtype);
        for (const int64_t d : w.shape) {
            if (d < 0) throw Error(fmt::format("{}: tensor {} has a negative shape", path, w.name));
            n *= (uint64_t)d;
        }
        if (off.size() != 2 || off[0] > off[1] || off[1] - off[0] != n || data_start + off[1] > file_size)
            throw Error(
                fmt::format("{}: tensor {} has bad data offsets (the file is damaged)", path, w.name));
        w.begin = off[0], w.size = n, w.at = total;
        total += (n + 7) / 8 * 8;
    }
    if (reuse) s.bytes = std::move(reuse->bytes), *reuse = RawShard{};
    if (s.bytes.size() < total / 8)
        s.bytes.resize(total / 8);  // never shrinks: a reused buffer stays faulted in
    auto * base = reinterpret_cast<uint8_t *>(s.bytes.data());
    for (const auto & w : want)
        for (uint64_t done = 0; done < w.size;) {
            const ssize_t r =
                ::pread(fd, base + w.at + done, w.size - done, (off_t)(data_start + w.begin + done));
            if (r <= 0) throw Error(fmt::format("{}: read error in tensor {}", path, w.name));
            done += (uint64_t)r;
        }
    auto ptr = [&](size_t i) { return base + want[i].at; };
    const int64_t n_seq = want[0].shape.empty() ? 0 : want[0].shape[0];
    for (size_t i = 1; i < 4; ++i)
        if (want[i].shape != std::vector<int64_t>{n_seq})
            throw Error(fmt::format("{}: {} does not match seq_index", path, want[i].name));
    if (want[4].shape != std::vector<int64_t>{n_seq + 1})
        throw Error(fmt::format("{}: seq_offset does not match seq_index", path));
    const auto * index = reinterpret_cast<const int64_t *>(ptr(0));
    const auto * group = reinterpret_cast<const int64_t *>(ptr(1));
    const auto * lang = reinterpret_cast<const int32_t *>(ptr(2));
    const auto * domain = reinterpret_cast<const int32_t *>(ptr(3));
    const auto * offset = reinterpret_cast<const int64_t *>(ptr(4));
    // The same checks as parse_shard (trace_store.cpp), so that analysis can trust a RawShard: sequence
    // count and corpus positions agree with the manifest, offsets start at 0 and never decrease, languages,
    // domains and groups are in range, expert ids < E, probabilities finite in [0, 1].
    auto bad = [&](const std::string & what) { return corrupt_shard(path, what); };
    const int64_t want_seqs = shard_n_sequences(path, m, shard);
    if (n_seq != want_seqs) throw bad(fmt::format("{} sequences, manifest.json says {}", n_seq, want_seqs));
    s.seqs = checked_sequences(path, m, shard, n_seq, index, group, lang, domain, offset);
    s.n_tok = offset[n_seq];
    if (want[5].shape != std::vector<int64_t>{s.n_tok, s.n_moe, s.top_k} ||
        (with_probs && want[6].shape != std::vector<int64_t>{s.n_tok, s.n_moe, s.n_expert}))
        throw Error(fmt::format("{}: shapes do not match manifest.json (n_moe {}, E {}, k {})", path, s.n_moe,
                                s.n_expert, s.top_k));
    s.topk = reinterpret_cast<const int16_t *>(ptr(5));
    const int64_t n_ids = s.n_tok * s.n_moe * s.top_k;
    int16_t id_lo = 0, id_hi = 0;
    for (int64_t i = 0; i < n_ids; ++i)
        id_lo = std::min(id_lo, s.topk[i]), id_hi = std::max(id_hi, s.topk[i]);
    if (id_lo < 0 || id_hi >= s.n_expert) throw bad(fmt::format("expert id outside [0, {})", s.n_expert));
    if (with_probs) {
        const int64_t n_p = s.n_tok * s.n_moe * s.n_expert;
        bool ok = true;
        if (m.probs_dtype == "f16") {
            s.probs_f16 = reinterpret_cast<const uint16_t *>(ptr(6));
            // f16 bits: valid iff in [+0, 1.001] (0x0000..0x3C01) or −0 (0x8000); NaN, ±inf and negatives
            // fail
            for (int64_t i = 0; i < n_p; ++i) ok &= s.probs_f16[i] <= 0x3C01 || s.probs_f16[i] == 0x8000;
        } else {
            s.probs_f32 = reinterpret_cast<const float *>(ptr(6));
            for (int64_t i = 0; i < n_p; ++i) ok &= s.probs_f32[i] >= 0.0f && s.probs_f32[i] <= 1.0f + 1e-3f;
        }
        if (!ok) throw bad("a probability is not finite in [0, 1]");
    }
    return s;
}

}  // namespace rs
