// routescope: shared error handling.
//
// Three tiers: RS_ASSERT for bugs (always on, aborts with file:line), rs::Error for
// bad user input (caught by the CLI and printed as one line, exit code 1), and checked I/O helpers
// that name the file and give a hint.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace rs {

// Bad input or an environment problem the user can fix. The message is one line, no trailing dot.
struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// nlohmann::json's what() text without its "[json.exception.parse_error.101] " tag, for messages that
// quote where a JSON document broke (users see one plain line, never the library's exception id).
inline std::string json_error_text(const char * what) {
    std::string s(what);
    if (s.rfind("[json.exception.", 0) == 0) {
        const size_t close = s.find("] ");
        if (close != std::string::npos) s.erase(0, close + 2);
    }
    return s;
}

// A user-given name (a JSON key, an id) quoted in a one-line message: control characters escaped as
// \xNN and the text cut at 80 bytes, so a hostile name cannot break the line or flood the terminal.
inline std::string printable(const std::string & s) {
    static const char * hex = "0123456789abcdef";
    std::string out;
    for (const char ch : s) {
        const auto c = (unsigned char)ch;
        if (out.size() >= 80) return out + "…";
        if (c < 0x20 || c == 0x7f) {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += ch;
        }
    }
    return out;
}

[[noreturn]] inline void assert_fail(const char * expr, const char * file, int line) {
    std::fprintf(stderr, "routescope: internal error: %s:%d: assertion failed: %s\n", file, line, expr);
    std::abort();
}

}  // namespace rs

#define RS_ASSERT(x)                                       \
    do {                                                   \
        if (!(x)) rs::assert_fail(#x, __FILE__, __LINE__); \
    } while (0)
