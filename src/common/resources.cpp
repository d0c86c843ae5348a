// installed_share_dir, resource_path (routescope/resources.h).
#include "routescope/resources.h"

#include <cstdlib>
#include <filesystem>
#include <system_error>

namespace fs = std::filesystem;

#ifndef RS_INSTALL_SHARE_REL
#define RS_INSTALL_SHARE_REL "../share/routescope"
#endif

namespace rs {

std::string installed_share_dir() {
    std::error_code ec;
    // /proc/self/exe resolves symlinks (a /usr/local/bin link to an /opt install finds /opt's share/)
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (ec || exe.empty()) return {};
    const fs::path share = (exe.parent_path() / RS_INSTALL_SHARE_REL).lexically_normal();
    return fs::is_directory(share, ec) ? share.string() : std::string();
}

std::string resource_path(const char * env, const std::string & sub, const std::string & fallback) {
    if (env != nullptr) {
        const char * v = std::getenv(env);
        if (v != nullptr && *v != '\0') return v;
    }
    if (const std::string share = installed_share_dir(); !share.empty()) {
        std::error_code ec;
        const fs::path p = fs::path(share) / sub;
        if (fs::exists(p, ec)) return p.string();
    }
    return fallback;
}

}  // namespace rs
