#!/usr/bin/env bash
# The shipped data sets are intact and complete: every file in data/SHA256SUMS has its checksum, and every
# file under data/ (but the manifest and the checksum list) is listed, so a file added without a checksum
# fails here too. Usage: tests/data_checksums.sh [DATA_DIR] (default: data/ of this repository).
set -euo pipefail
dir="${1:-$(dirname "$0")/../data}"
cd "$dir"
[[ -f SHA256SUMS ]] || { echo "data_checksums: $dir/SHA256SUMS missing (restore data/ from git)" >&2; exit 1; }
sha256sum --check --quiet --strict SHA256SUMS
listed=$(sed -E 's/^[0-9a-f]{64} [ *]//' SHA256SUMS | sort)
present=$(find . -type f ! -name SHA256SUMS ! -name MANIFEST.md | sort)
if [[ "$listed" != "$present" ]]; then
  echo "data_checksums: data/ and data/SHA256SUMS disagree (add the file's line: sha256sum ./PATH >> SHA256SUMS):" >&2
  diff <(echo "$listed") <(echo "$present") >&2 || true
  exit 1
fi
echo "data_checksums: $(echo "$listed" | wc -l) files verified"
