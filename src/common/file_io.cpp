// write_file_atomic (routescope/file_io.h).
#include "routescope/file_io.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include "routescope/common.h"

namespace fs = std::filesystem;

namespace rs {

void write_file_atomic(const std::string & path, const std::string & content) {
    const fs::path p(path);
    std::error_code ec;
    if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
    // the pid keeps two processes writing the same target from sharing a temporary file
    const std::string tmp = fmt::format("{}.tmp-{}", path, getpid());
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        if (!f) throw Error(fmt::format("cannot write {} (check the directory exists and is writable)", tmp));
        f.write(content.data(), (std::streamsize)content.size());
        if (!f.flush()) throw Error(fmt::format("cannot write {} (disk full?)", tmp));
    }
    fs::rename(tmp, p, ec);
    if (ec) throw Error(fmt::format("cannot rename {} to {}: {}", tmp, path, ec.message()));
}

std::string read_file(const std::string & path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(fmt::format("cannot read {} (missing?)", path));
    return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace rs
