// Text file helpers shared by the dataset readers; see text_io.h.
#include "text_io.h"

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

}  // namespace rs
