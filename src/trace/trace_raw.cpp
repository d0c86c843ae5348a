// read_shard_raw (trace.h): a shard's tensors as stored, for the one-pass analysis. Reads the whole file
// into one 8-byte-aligned buffer in 1 MiB chunks, hashing each chunk while it is still in cache when the
// manifest holds the shard's digest (the same check as read_shard: a shard whose bytes changed after it
// was recorded is refused before anything is parsed), then checks every tensor it uses against the header
// and the manifest (dtype, shape, byte range inside the file) and hands out views into the buffer.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>

#include <fmt/format.h>

#include "routescope/common.h"
#include "routescope/file_io.h"
#include "routescope/trace.h"
#include "safetensors.h"
#include "shard_check.h"

namespace rs {

namespace fs = std::filesystem;

namespace {

// f16 bits: a probability iff in [+0, 1.001] (0x0000..0x3C01) or −0 (0x8000); NaN, ±inf and negatives
// fail. A max reduction over the bits with −0 mapped to 0, which compilers vectorise (the check reads
// every stored p, so a branch per value would cost as much as the analysis pass).
bool f16_probs_ok_scalar(const uint16_t * p, int64_t n) {
    uint16_t mx = 0;
    for (int64_t i = 0; i < n; ++i) {
        const uint16_t v = p[i] == 0x8000 ? 0 : p[i];
        mx = v > mx ? v : mx;
    }
    return mx <= 0x3C01;
}

#if defined(__x86_64__)
// The same reduction sixteen values at a time (GCC did not vectorise the scalar form).
__attribute__((target("avx2"))) bool f16_probs_ok_avx2(const uint16_t * p, int64_t n) {
    const __m256i neg0 = _mm256_set1_epi16((short)0x8000);
    __m256i mx = _mm256_setzero_si256();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p + i));
        mx = _mm256_max_epu16(mx, _mm256_andnot_si256(_mm256_cmpeq_epi16(v, neg0), v));  // −0 → 0
    }
    alignas(32) uint16_t lanes[16];
    _mm256_store_si256(reinterpret_cast<__m256i *>(lanes), mx);
    uint16_t m = 0;
    for (const uint16_t v : lanes) m = v > m ? v : m;
    return m <= 0x3C01 && f16_probs_ok_scalar(p + i, n - i);
}
#endif

bool f16_probs_ok(const uint16_t * p, int64_t n) {
#if defined(__x86_64__)
    static const bool avx2 = __builtin_cpu_supports("avx2");
    if (avx2) return f16_probs_ok_avx2(p, n);
#endif
    return f16_probs_ok_scalar(p, n);
}

// A tensor the reader uses: its name and dtype, then where it lies in the buffer.
struct Want {
    const char * name;
    const char * dtype;
    uint64_t size = 0;
    const uint8_t * at = nullptr;
    std::vector<int64_t> shape;
};

// The header read from the file unverified (null when it is not a JSON object): it only says where to read
// and what to check while reading; the digest of the bytes, header included, then tells whether it was the
// header written, and every view is taken from the verified bytes.
nlohmann::json header_unverified(int fd, uint64_t n_header) {
    std::string h(n_header, '\0');
    if (n_header > (100u << 20) || ::pread(fd, h.data(), n_header, 8) != (ssize_t)n_header) return nullptr;
    auto header = nlohmann::json::parse(h, nullptr, /*allow_exceptions=*/false);
    return header.is_object() ? header : nullptr;
}

// Tensor `name`'s data offsets [begin, end) in the file by the unverified header, if it states them.
std::optional<std::pair<uint64_t, uint64_t>> file_range(const nlohmann::json & header, uint64_t n_header,
                                                        uint64_t file_size, const char * name) {
    if (!header.is_object()) return std::nullopt;
    const auto t = header.find(name);
    if (t == header.end() || !t->is_object() || !t->contains("data_offsets")) return std::nullopt;
    const auto & off = (*t)["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
        return std::nullopt;
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e || e > file_size - 8 - n_header) return std::nullopt;
    return std::pair{8 + n_header + b, 8 + n_header + e};
}

// Where the tensors `want` end in the file by the unverified header; the whole file when the header cannot
// say, so that the digest check refuses it.
uint64_t end_of_tensors(const nlohmann::json & header, uint64_t n_header, uint64_t file_size,
                        std::span<const Want> want) {
    uint64_t end = 0;
    for (const auto & w : want) {
        const auto r = file_range(header, n_header, file_size, w.name);
        if (!r) return file_size;
        end = std::max(end, r->second);
    }
    return end;
}

bool f32_probs_ok(const float * p, int64_t n) {
    int64_t n_bad = 0;  // the negated test also catches NaN
    for (int64_t i = 0; i < n; ++i) n_bad += !(p[i] >= 0.0f && p[i] <= 1.0f + 1e-3f);
    return n_bad == 0;
}

// n stored probabilities at `at` (f16 or f32, aligned to their element) are finite and in [0, 1]
bool probs_ok(const uint8_t * at, int64_t n, bool f16) {
    return f16 ? f16_probs_ok(reinterpret_cast<const uint16_t *>(at), n)
               : f32_probs_ok(reinterpret_cast<const float *>(at), n);
}

}  // namespace

RawShard read_shard_raw(const std::string & dir, const TraceManifest & m, int64_t shard, bool with_probs,
                        RawShard * reuse) {
    const std::string path = (fs::path(dir) / shard_file_name(shard)).string();
    if (with_probs && m.store == "topk")
        throw Error(
            fmt::format("{}: recorded with --store topk, it holds no full routing distribution p_t "
                        "(record with --store full for divergence and entropy)",
                        path));
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(fmt::format("{}: cannot open (check the trace directory)", path));
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat sb {};
    if (::fstat(fd, &sb) != 0) throw Error(fmt::format("{}: cannot stat", path));
    const uint64_t file_size = (uint64_t)sb.st_size;
    uint64_t n_header = 0;
    if (file_size < 8 || ::pread(fd, &n_header, 8, 0) != 8 || n_header > file_size - 8)
        throw Error(fmt::format("{}: not a safetensors file", path));
    const char * pd = m.probs_dtype == "f16" ? "F16" : "F32";
    std::vector<Want> want = {{"seq_index", "I64"},  {"seq_group", "I64"},  {"seq_lang", "I32"},
                              {"seq_domain", "I32"}, {"seq_offset", "I64"}, {"topk", "I16"}};
    const bool topk_store = m.store == "topk";
    if (with_probs) want.push_back({"probs", pd});
    if (topk_store) want.push_back({"topk_probs", pd});  // small ([T, L, K]): always checked
    const DigestToVerify verify = digest_to_verify(m, shard, /*whole_file=*/with_probs);
    const bool index_part = verify.index_part;
    const nlohmann::json header0 = index_part || with_probs ? header_unverified(fd, n_header) : nullptr;
    const uint64_t n_read = index_part ? end_of_tensors(header0, n_header, file_size, want) : file_size;
    // The file goes to buffer offset `pad`, so that the data section (and with it every tensor routescope
    // writes: their sizes keep each one aligned to its element) starts 8-byte aligned; a tensor a foreign
    // writer left misaligned is copied behind the file (`extra`).
    const uint64_t pad = (8 - (8 + n_header) % 8) % 8;
    // probs are checked chunk by chunk while each is still in cache (a second pass over the shard from
    // memory cost ~5% of analyze), where the unverified header places them aligned; the verified header
    // must then place them there too, else they are checked again from the buffer
    const uint64_t elem = m.probs_dtype == "f16" ? 2 : 4;
    const auto range = with_probs ? file_range(header0, n_header, file_size, "probs") : std::nullopt;
    const auto [probs_begin, probs_end] = range.value_or(std::pair<uint64_t, uint64_t>{0, 0});
    const bool fuse_check = range && (pad + probs_begin) % elem == 0 && (probs_end - probs_begin) % elem == 0;
    uint64_t checked_to = probs_begin;  // probs checked in [probs_begin, checked_to)
    bool probs_bad = false;

    RawShard s;
    s.n_moe = (int)m.moe_layers.size(), s.n_expert = m.n_expert, s.top_k = m.top_k;
    if (reuse) s.bytes = std::move(reuse->bytes), *reuse = RawShard{};
    const uint64_t file_words = (pad + n_read + 7) / 8;
    if (s.bytes.size() < file_words) s.bytes.resize(file_words);  // never shrinks: stays faulted in
    auto * base = reinterpret_cast<uint8_t *>(s.bytes.data()) + pad;
    {
        std::optional<Sha256> sha;
        std::optional<Xxh3_128> xxh3;
        if (verify.digest && verify.xxh3)
            xxh3.emplace();
        else if (verify.digest)
            sha.emplace();
        constexpr uint64_t kChunk = 1u << 20;
        for (uint64_t done = 0; done < n_read;) {
            const ssize_t r = ::pread(fd, base + done, std::min(kChunk, n_read - done), (off_t)done);
            if (r <= 0) throw Error(fmt::format("{}: read error", path));
            if (sha) sha->update(base + done, (size_t)r);
            if (xxh3) xxh3->update(base + done, (size_t)r);
            done += (uint64_t)r;
            if (fuse_check && done > checked_to) {  // the whole elements read since the last chunk
                const uint64_t n = (std::min(done, probs_end) - checked_to) / elem;
                probs_bad |= !probs_ok(base + checked_to, (int64_t)n, elem == 2);
                checked_to += n * elem;
            }
        }
        if (verify.digest && (xxh3 ? xxh3->hex() : sha->hex()) != *verify.digest)
            throw shard_checksum_mismatch(path);
    }
    // From here on only the n_read bytes read exist: every view is checked to lie inside them.
    size_t data_start = 0;
    const nlohmann::json header = st_parse_header(path, base, n_read, data_start);

    uint64_t extra = 0;  // bytes of misaligned tensors copied behind the file
    for (auto & w : want) {
        if (!header.is_object() || !header.contains(w.name))
            throw Error(fmt::format("{}: tensor {} is missing (re-record the trace)", path, w.name));
        const auto & t = header.at(w.name);
        if (!t.is_object() || !t.contains("dtype") || t["dtype"] != w.dtype || !t.contains("shape") ||
            !t.contains("data_offsets"))
            throw Error(fmt::format("{}: tensor {} is not {} (re-record the trace)", path, w.name, w.dtype));
        uint64_t n = st_dtype_size(w.dtype);
        std::vector<uint64_t> off;
        try {
            w.shape = t["shape"].get<std::vector<int64_t>>();
            off = t["data_offsets"].get<std::vector<uint64_t>>();
        } catch (const nlohmann::json::exception &) {
            throw Error(fmt::format(
                "{}: tensor {} has a malformed shape or data offsets (the file is damaged)", path, w.name));
        }
        for (const int64_t d : w.shape) {
            if (d < 0) throw Error(fmt::format("{}: tensor {} has a negative shape", path, w.name));
            if (d != 0 && n > n_read / (uint64_t)d)
                throw Error(fmt::format("{}: tensor {} is larger than the file", path, w.name));
            n *= (uint64_t)d;
        }
        if (off.size() != 2 || off[0] > off[1] || off[1] - off[0] != n || off[1] > n_read - data_start)
            throw Error(
                fmt::format("{}: tensor {} has bad data offsets (the file is damaged)", path, w.name));
        w.size = n;
        w.at = base + data_start + off[0];
        if ((uintptr_t)w.at % st_dtype_size(w.dtype) != 0) extra += (n + 7) / 8 * 8;
    }
    if (extra) {  // rare (not a file routescope wrote): aligned copies behind the file
        const size_t old_at = (size_t)(base - reinterpret_cast<uint8_t *>(s.bytes.data()));
        std::vector<size_t> pos;  // offsets into the buffer: resize may move it
        for (const auto & w : want)
            pos.push_back((size_t)(w.at - reinterpret_cast<uint8_t *>(s.bytes.data())));
        s.bytes.resize(file_words + extra / 8);
        auto * buf = reinterpret_cast<uint8_t *>(s.bytes.data());
        base = buf + old_at;
        size_t spill = file_words * 8;
        for (size_t i = 0; i < want.size(); ++i) {
            want[i].at = buf + pos[i];
            if (pos[i] % st_dtype_size(want[i].dtype) == 0) continue;
            std::memcpy(buf + spill, want[i].at, want[i].size);
            want[i].at = buf + spill;
            spill += (want[i].size + 7) / 8 * 8;
        }
    }
    auto ptr = [&](size_t i) { return want[i].at; };
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
    const size_t i_probs = 6, i_topk_probs = with_probs ? 7 : 6;
    if (want[5].shape != std::vector<int64_t>{s.n_tok, s.n_moe, s.top_k} ||
        (with_probs && want[i_probs].shape != std::vector<int64_t>{s.n_tok, s.n_moe, s.n_expert}) ||
        (topk_store && want[i_topk_probs].shape != std::vector<int64_t>{s.n_tok, s.n_moe, s.top_k}))
        throw Error(fmt::format("{}: shapes do not match manifest.json (n_moe {}, E {}, k {})", path, s.n_moe,
                                s.n_expert, s.top_k));
    s.topk = reinterpret_cast<const int16_t *>(ptr(5));
    const int64_t n_ids = s.n_tok * s.n_moe * s.top_k;
    int16_t id_lo = 0, id_hi = 0;
    for (int64_t i = 0; i < n_ids; ++i)
        id_lo = std::min(id_lo, s.topk[i]), id_hi = std::max(id_hi, s.topk[i]);
    if (id_lo < 0 || id_hi >= s.n_expert) throw bad(fmt::format("expert id outside [0, {})", s.n_expert));
    // checked: the values at `at` were checked while read (probs_bad says how it went)
    auto check = [&](const uint8_t * at, int64_t n, const uint16_t *& f16, const float *& f32, bool checked) {
        if (m.probs_dtype == "f16")
            f16 = reinterpret_cast<const uint16_t *>(at);
        else
            f32 = reinterpret_cast<const float *>(at);
        if (checked ? probs_bad : !probs_ok(at, n, m.probs_dtype == "f16"))
            throw bad("a probability is not finite in [0, 1]");
    };
    const bool probs_checked = fuse_check && checked_to == probs_end && ptr(i_probs) == base + probs_begin &&
                               want[i_probs].size == probs_end - probs_begin;
    if (with_probs)
        check(ptr(i_probs), s.n_tok * s.n_moe * s.n_expert, s.probs_f16, s.probs_f32, probs_checked);
    if (topk_store) check(ptr(i_topk_probs), n_ids, s.topk_probs_f16, s.topk_probs_f32, false);
    return s;
}

}  // namespace rs
