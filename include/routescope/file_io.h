// Whole-file writes that never leave a half-written file behind: the content goes to a temporary file next
// to the target, which is then renamed over it (atomic on POSIX). Used for every result file routescope
// writes in one piece (manifests, CSV tables, JSON summaries, reports).
#pragma once

#include <string>

namespace rs {

// Creates the parent directory if needed; throws rs::Error naming the file (and a hint) on failure.
void write_file_atomic(const std::string & path, const std::string & content);

// The whole file; rs::Error naming it when it cannot be read.
std::string read_file(const std::string & path);

}  // namespace rs
