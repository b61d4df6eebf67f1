#!/usr/bin/env bash
# `buf breaking` (rules: buf.yaml's breaking.use = FILE) of the working tree's protos/ against
# the last released contract: git main's protos/. Run from `make lint`; exits non-zero on a
# breaking change. On main itself (a clean CI clone of main) it compares main with itself and
# passes; on a branch it catches what the branch would break.
#
# Against: $BUF_BREAKING_AGAINST if set (any buf input), else the local branch `main`, else the
# remote-tracking `origin/main` (CI clones of a PR often have only that). The input is the
# whole workspace (buf.yaml at the root, module `protos`), so both sides have the same layout.
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=${BUF:-tools/node_modules/.bin/buf}

against=${BUF_BREAKING_AGAINST:-}
if [[ -z "$against" ]]; then
  if git rev-parse --verify -q refs/heads/main >/dev/null; then
    against='.git#branch=main'
  elif git rev-parse --verify -q refs/remotes/origin/main >/dev/null; then
    against='.git#ref=origin/main'
  else
    echo "buf-breaking: no 'main' or 'origin/main' in this clone; fetch it (git fetch origin main)" \
      "or set BUF_BREAKING_AGAINST" >&2
    exit 2
  fi
fi
echo "buf breaking --against '$against'"
"$BUF" breaking --against "$against"
