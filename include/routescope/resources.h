// Where routescope finds the files it ships with: the data sets (data/), the bundled model (models/) and
// the report's plotting libraries (web/). An installed binary (<prefix>/bin/routescope, `cmake --install`)
// finds them under <prefix>/share/routescope/, located from the binary's own path, so it works from any
// directory; a binary run from its build tree falls back to the source and build tree paths compiled in
// (docs/architecture.md, "Files routescope ships with").
#pragma once

#include <string>

namespace rs {

// <directory of the running executable>/<the install's bindir → datadir/routescope path>, when that
// directory exists (an installed binary); empty otherwise (a build-tree binary, or no /proc/self/exe).
std::string installed_share_dir();

// The location of a shipped resource: $<env> when set and non-empty, else <installed share>/<sub> when it
// exists, else `fallback` (the source or build tree path). Nothing is checked beyond existence: callers
// report a missing file with their own one-line error.
std::string resource_path(const char * env, const std::string & sub, const std::string & fallback);

}  // namespace rs
