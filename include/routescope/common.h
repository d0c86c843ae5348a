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

[[noreturn]] inline void assert_fail(const char * expr, const char * file, int line) {
    std::fprintf(stderr, "routescope: internal error: %s:%d: assertion failed: %s\n", file, line, expr);
    std::abort();
}

}  // namespace rs

#define RS_ASSERT(x)                                       \
    do {                                                   \
        if (!(x)) rs::assert_fail(#x, __FILE__, __LINE__); \
    } while (0)
