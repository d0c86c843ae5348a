#!/usr/bin/env bash
# A clone is self-contained: no tracked file refers to a directory beside the checkout (the sibling folder
# where the data and design notes were once kept) or to design documents that are not in the
# repository; docs/ and data/ are the references. Skipped (exit 77) outside a git checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || { echo "self_contained: not a git checkout: skipped"; exit 77; }
pattern='\.\./shared|shared/(data|DESIGN|STYLE|papers|notes)|\bDESIGN\.md|\bSTYLE\.md'
if hits=$(git grep -n -I -E "$pattern" -- . ':!tests/self_contained.sh'); then
  echo "self_contained: references to files outside the repository (point them at docs/ or data/):" >&2
  echo "$hits" >&2
  exit 1
fi
echo "self_contained: no reference outside the repository in $(git ls-files | wc -l) tracked files"
