// Minimal safetensors reader/writer (https://github.com/huggingface/safetensors, format section):
// 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}},
// "__metadata__": {str: str}}, then the raw little-endian tensor bytes, offsets relative to the
// end of the header. Internal to the trace store; the layout is what numpy/torch readers expect.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "routescope/f16.h"  // f32_to_f16, f16_to_f32 (the store writes p as f16)

namespace rs {

struct StTensorView {
    std::string name;
    std::string dtype;  // "F16", "F32", "I16", "I32", "I64"
    std::vector<int64_t> shape;
    const void * data = nullptr;
    size_t nbytes = 0;
};

size_t st_dtype_size(const std::string & dtype);  // throws rs::Error for an unknown dtype

// The SHA-256 (hex) of a file st_write wrote, and of its first bytes up to the end of its first n_prefix
// tensors (the length prefix, the header and those tensors' data; empty when n_prefix is 0): a reader of
// those tensors alone verifies them without reading the rest. And the XXH3-128 of both, which readers
// verify (file_io.h).
struct StDigests {
    std::string file;         // SHA-256 of the file
    std::string prefix;       // SHA-256 of its first n_prefix tensors (with the length and header)
    std::string file_xxh3;    // XXH3-128 of the file
    std::string prefix_xxh3;  // and of its first n_prefix tensors
};

// Writes the tensors in the given order to `path` via a temporary file + rename (atomic on POSIX).
StDigests st_write(const std::string & path, std::span<const StTensorView> tensors,
                   const std::map<std::string, std::string> & metadata, size_t n_prefix = 0);

// A whole file read into memory; views point into `bytes`.
struct StFile {
    std::vector<uint8_t> bytes;
    size_t data_start = 0;
    nlohmann::json header;
    std::map<std::string, std::string> metadata;

    bool has(const std::string & name) const { return header.contains(name); }
    // Throws rs::Error when the tensor is missing or its dtype differs from `dtype`.
    StTensorView get(const std::string & name, const std::string & dtype) const;
};

StFile st_read(const std::string & path);  // validates the header; throws rs::Error naming the file
// The same from bytes already in memory (`path` only names them in errors): the fuzz targets' entry.
StFile st_parse(const std::string & path, std::vector<uint8_t> bytes);
nlohmann::json st_read_header(const std::string & path);
// The JSON header of a safetensors file whose first `size` bytes are at `p` (the header is parsed, not
// validated as st_parse does); data_start: where the data section begins. Throws rs::Error naming `path`.
nlohmann::json st_parse_header(const std::string & path, const uint8_t * p, size_t size, size_t & data_start);

}  // namespace rs
