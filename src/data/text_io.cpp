// Text file helpers shared by the dataset readers; see text_io.h.
#include "text_io.h"

#include <cstdint>
#include <fstream>

#include <fmt/format.h>

#include "routescope/common.h"

namespace fs = std::filesystem;

namespace rs {

std::string read_text(const fs::path & path, std::string_view what) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec))
        throw Error(
            fmt::format("{}: no such file {} (check the path; the data sets live in data/ of the repository)",
                        what, path.string()));
    std::ifstream in(path, std::ios::binary);
    std::string text(fs::file_size(path, ec), '\0');
    if (!in.read(text.data(), static_cast<std::streamsize>(text.size())))
        throw Error(fmt::format("{}: cannot read {} (check its permissions)", what, path.string()));
    return text;
}

// Splits on '\n' and strips a trailing '\r'; a final newline does not start another line.
std::vector<std::string_view> split_lines(std::string_view s) {
    std::vector<std::string_view> out;
    for (size_t pos = 0; pos < s.size();) {
        const size_t end = std::min(s.find('\n', pos), s.size());
        std::string_view line = s.substr(pos, end - pos);
        if (line.ends_with('\r')) line.remove_suffix(1);
        out.push_back(line);
        pos = end + 1;
    }
    return out;
}

bool is_valid_utf8(std::string_view s) {
    size_t i = 0;
    const size_t n = s.size();
    while (i < n) {
        const auto c = (unsigned char)s[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        int len = 0;
        uint32_t cp = 0, min = 0;
        if ((c & 0xe0) == 0xc0)
            len = 2, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0)
            len = 3, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0)
            len = 4, cp = c & 0x07, min = 0x10000;
        else
            return false;
        if (i + (size_t)len > n) return false;
        for (int k = 1; k < len; ++k) {
            const auto d = (unsigned char)s[i + (size_t)k];
            if ((d & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (d & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += (size_t)len;
    }
    return true;
}

}  // namespace rs
