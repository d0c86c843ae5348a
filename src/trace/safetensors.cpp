// Minimal safetensors reader/writer; see safetensors.h.
#include "safetensors.h"

#include <bit>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <unistd.h>

#include "routescope/common.h"
#include "routescope/file_io.h"

namespace rs {

static_assert(std::endian::native == std::endian::little, "the trace store assumes a little-endian host");

size_t st_dtype_size(const std::string & dtype) {
    if (dtype == "F16" || dtype == "I16") return 2;
    if (dtype == "F32" || dtype == "I32") return 4;
    if (dtype == "F64" || dtype == "I64") return 8;
    if (dtype == "U8" || dtype == "I8") return 1;
    throw Error(fmt::format("safetensors: unsupported dtype '{}'", dtype));
}

StDigests st_write(const std::string & path, std::span<const StTensorView> tensors,
                   const std::map<std::string, std::string> & metadata, size_t n_prefix) {
    RS_ASSERT(n_prefix <= tensors.size());
    nlohmann::ordered_json header;
    if (!metadata.empty()) header["__metadata__"] = metadata;
    size_t offset = 0;
    for (const auto & t : tensors) {
        size_t n = 1;
        for (int64_t d : t.shape) n *= (size_t)d;
        RS_ASSERT(n * st_dtype_size(t.dtype) == t.nbytes);
        header[t.name] = {
            {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.nbytes}}};
        offset += t.nbytes;
    }
    std::string h = header.dump();
    h.append((8 - h.size() % 8) % 8, ' ');  // pad so the data section is 8-byte aligned
    const uint64_t n_header = h.size();

    const std::string tmp = fmt::format("{}.tmp-{}", path, getpid());
    Sha256 sha;     // of the bytes as written: the manifest's shard checksums
    Xxh3_128 xxh3;  // (and the fast one readers verify)
    StDigests digests;
    std::error_code ec;
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        if (!f)
            throw Error(fmt::format("{}: cannot write (check the directory exists and is writable)", tmp));
        auto put = [&](const void * d, size_t n) {
            f.write(static_cast<const char *>(d), (std::streamsize)n);
            sha.update(d, n);
            xxh3.update(d, n);
        };
        put(&n_header, 8);
        put(h.data(), h.size());
        for (size_t i = 0; i < tensors.size(); ++i) {
            put(tensors[i].data, tensors[i].nbytes);
            if (i + 1 == n_prefix) digests.prefix = sha.hex_so_far(), digests.prefix_xxh3 = xxh3.hex();
        }
        f.flush();
        if (!f) {
            f.close();
            std::filesystem::remove(tmp, ec);  // a full disk must not leave the temporary behind
            throw Error(fmt::format("{}: write failed (disk full?)", tmp));
        }
    }
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::error_code ec2;
        std::filesystem::remove(tmp, ec2);
        throw Error(fmt::format("{}: cannot rename {} over it: {}", path, tmp, ec.message()));
    }
    digests.file = sha.hex();
    digests.file_xxh3 = xxh3.hex();
    return digests;
}

nlohmann::json st_parse_header(const std::string & path, const uint8_t * p, size_t size,
                               size_t & data_start) {
    if (size < 8) throw Error(fmt::format("{}: not a safetensors file (too short)", path));
    uint64_t n = 0;
    std::memcpy(&n, p, 8);
    if (n > size - 8 || n > (100u << 20))
        throw Error(fmt::format("{}: corrupt safetensors header length", path));
    data_start = 8 + n;
    try {
        return nlohmann::json::parse(p + 8, p + 8 + n);
    } catch (const nlohmann::json::exception & e) {
        throw Error(fmt::format("{}: corrupt safetensors header: {} (re-record the trace)", path,
                                json_error_text(e.what())));
    }
}

nlohmann::json st_read_header(const std::string & path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(fmt::format("cannot open {}", path));
    uint64_t n = 0;
    f.read(reinterpret_cast<char *>(&n), 8);
    if (!f || n > (100u << 20)) throw Error(fmt::format("{}: not a safetensors file", path));
    std::vector<uint8_t> buf(8 + n);
    std::memcpy(buf.data(), &n, 8);
    f.read(reinterpret_cast<char *>(buf.data() + 8), (std::streamsize)n);
    if (!f) throw Error(fmt::format("{}: truncated safetensors header", path));
    size_t data_start = 0;
    return st_parse_header(path, buf.data(), buf.size(), data_start);
}

// Every header entry is checked before any view is handed out: a tensor entry is an object with a
// known "dtype", a "shape" of non-negative integers whose byte size does not overflow, and
// "data_offsets" [begin, end] inside the data section and matching the shape; "__metadata__" maps
// strings to strings. A malformed header is an rs::Error naming the file, never a raw JSON error.
static void validate_header(const std::string & path, StFile & sf, size_t data_size) {
    if (!sf.header.is_object())
        throw Error(
            fmt::format("{}: corrupt safetensors header (not a JSON object; re-record the trace)", path));
    for (auto it = sf.header.begin(); it != sf.header.end(); ++it) {
        if (it.key() == "__metadata__") {
            if (!it->is_object())
                throw Error(fmt::format("{}: corrupt safetensors __metadata__ (not an object)", path));
            for (auto m = it->begin(); m != it->end(); ++m) {
                if (!m->is_string())
                    throw Error(
                        fmt::format("{}: safetensors __metadata__ '{}' is not a string", path, m.key()));
                sf.metadata[m.key()] = m->get<std::string>();
            }
            continue;
        }
        const auto & t = *it;
        auto bad = [&](const char * what) {
            return Error(fmt::format("{}: tensor '{}' {} (truncated or corrupt file; re-record the trace)",
                                     path, printable(it.key()), what));
        };
        if (!t.is_object() || !t.contains("dtype") || !t["dtype"].is_string() || !t.contains("shape") ||
            !t["shape"].is_array() || !t.contains("data_offsets") || !t["data_offsets"].is_array())
            throw bad("lacks dtype, shape or data_offsets");
        size_t n = 0;
        try {
            n = st_dtype_size(t["dtype"].get<std::string>());
        } catch (const Error &) {
            throw bad("has an unsupported dtype");
        }
        for (const auto & d : t["shape"]) {
            if (!d.is_number_unsigned()) throw bad("has a shape entry that is not a non-negative integer");
            const auto v = d.get<uint64_t>();
            if (v != 0 && n > data_size / v) throw bad("is larger than the file");
            n *= (size_t)v;
        }
        const auto & off = t["data_offsets"];
        if (off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
            throw bad("has data_offsets that are not two non-negative integers");
        const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
        if (b > e || e > data_size || e - b != n) throw bad("has inconsistent offsets");
    }
}

StFile st_parse(const std::string & path, std::vector<uint8_t> bytes) {
    StFile sf;
    sf.bytes = std::move(bytes);
    sf.header = st_parse_header(path, sf.bytes.data(), sf.bytes.size(), sf.data_start);
    validate_header(path, sf, sf.bytes.size() - sf.data_start);
    return sf;
}

StFile st_read(const std::string & path) {
    std::ifstream f(path, std::ios::binary | std::ios::ate);
    if (!f) throw Error(fmt::format("{}: cannot open (missing or unreadable)", path));
    const auto size = (size_t)f.tellg();
    f.seekg(0);
    std::vector<uint8_t> bytes(size);
    f.read(reinterpret_cast<char *>(bytes.data()), (std::streamsize)size);
    if (!f) throw Error(fmt::format("{}: cannot read", path));
    return st_parse(path, std::move(bytes));
}

StTensorView StFile::get(const std::string & name, const std::string & dtype) const {
    if (!header.contains(name) || name == "__metadata__")
        throw Error(fmt::format("safetensors: tensor '{}' missing", name));
    const auto & t = header.at(name);  // validated by st_parse
    StTensorView v;
    v.name = name;
    v.dtype = t.at("dtype").get<std::string>();
    if (v.dtype != dtype)
        throw Error(fmt::format("safetensors: tensor '{}' is {}, expected {}", name, v.dtype, dtype));
    for (const auto & d : t.at("shape")) v.shape.push_back((int64_t)d.get<uint64_t>());
    const size_t b = t.at("data_offsets")[0].get<size_t>(), e = t.at("data_offsets")[1].get<size_t>();
    v.data = bytes.data() + data_start + b;
    v.nbytes = e - b;
    return v;
}

}  // namespace rs
