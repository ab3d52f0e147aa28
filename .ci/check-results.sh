#!/usr/bin/env bash
# Checks that every report of record under docs/results/ is exactly what `graft report` makes from
# the results file committed beside it (docs/results/<name>.jsonl, with <name>.sequences.jsonl if
# any): the markdown and every plot. A report edited by hand, or a code change that changes a
# report without regenerating it, fails here. Nothing to check (and exit 0) when there is none.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob

files=()
for f in docs/results/*.jsonl; do
  case "$f" in *.sequences.jsonl) ;; *) files+=("$f") ;; esac
done
if [ ${#files[@]} -eq 0 ]; then
  echo "check-results: no results file under docs/results/, nothing to check"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for f in "${files[@]}"; do
  name=$(basename "$f" .jsonl)
  committed="docs/results/$name.md"
  if [ ! -f "$committed" ]; then
    echo "check-results: $f has no report $committed beside it (run: graft report $f --out $committed)" >&2
    status=1
    continue
  fi
  mkdir -p "$tmp/$name"
  cp "$f" "$tmp/$name/"
  [ -f "docs/results/$name.sequences.jsonl" ] && cp "docs/results/$name.sequences.jsonl" "$tmp/$name/"
  cargo run -q -p graft-harness -- report "$tmp/$name/$name.jsonl" --out "$tmp/$name/$name.md" >/dev/null 2>&1
  if ! diff -u "$committed" "$tmp/$name/$name.md"; then
    echo "check-results: $committed is not what 'graft report $f' makes (diff above); regenerate it" >&2
    status=1
  fi
  if [ -d "docs/results/$name-plots" ] || [ -d "$tmp/$name/$name-plots" ]; then
    if ! diff -r "docs/results/$name-plots" "$tmp/$name/$name-plots" >/dev/null; then
      diff -rq "docs/results/$name-plots" "$tmp/$name/$name-plots" >&2 || true
      echo "check-results: docs/results/$name-plots differs from what 'graft report $f' draws; regenerate it" >&2
      status=1
    fi
  fi
  [ $status -eq 0 ] && echo "check-results: $committed and its plots are what graft report makes from $f"
done
exit $status
