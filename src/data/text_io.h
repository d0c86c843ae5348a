// Text file helpers shared by the dataset readers (private to src/data).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace rs {

// Whole file as bytes; throws rs::Error naming `what` and the path when missing or unreadable.
std::string read_text(const std::filesystem::path & path, std::string_view what);

// Splits on '\n' and strips a trailing '\r'; a final newline does not start another line.
std::vector<std::string_view> split_lines(std::string_view s);

// Whether `s` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF).
// Ids, languages and domains end up in JSON (manifests, shard metadata), which must be valid UTF-8.
bool is_valid_utf8(std::string_view s);

}  // namespace rs
