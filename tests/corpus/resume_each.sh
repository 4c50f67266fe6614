#!/usr/bin/env bash
# Resume every checkpoint: run each corpus program (or the ones named) with snapshot-and-continue checkpoints
# every EVERY ms (default 4), kept as files; resume each file to the end in a fresh worker and compare its
# output with an uninterrupted run in plain CPython. Prints a line per program and the total; exits 1 on any
# difference. Slower than the corpus test (a process per checkpoint), so not part of `make test`.
#   make build-release && tests/corpus/resume_each.sh [--dir CORPUS_DIR] [FILE.py ...]
# --dir picks another corpus with the same layout (default tests/corpus); `make resume-each-libs` runs it on
# tests/corpus_libs with EVERY=250 (those programs import for seconds, and every resume imports them again).
set -uo pipefail
cd "$(dirname "$0")/../.."
bin=${MICROLAMBDA_BIN:-target/release/microlambda}
py=.venv/bin/python
export MICROLAMBDA_PYTHON=${MICROLAMBDA_PYTHON:-$PWD/$py} MICROLAMBDA_KEY=resume-each PYTHONHASHSEED=0
dir_=tests/corpus
if [ "${1:-}" = "--dir" ]; then dir_=$2; shift 2; fi
every=${EVERY:-4}
files=("$@")
[ ${#files[@]} -gt 0 ] || files=("$dir_"/*.py)
total=0 bad=0
for f in "${files[@]}"; do
  input=$($py -c 'import json, os, sys; print(json.dumps(json.load(open(sys.argv[1]))[os.path.basename(sys.argv[2])]))' \
    "$dir_"/inputs.json "$f")
  # The module is named after its file, as the worker names it (some outputs print qualified names).
  ref=$($py -c 'import importlib.util, json, os, sys
name = os.path.basename(sys.argv[1])[:-3]
spec = importlib.util.spec_from_file_location(name, sys.argv[1]); m = importlib.util.module_from_spec(spec)
sys.modules[name] = m; spec.loader.exec_module(m); print(json.dumps(m.main(json.loads(sys.argv[2]))))' "$f" "$input")
  dir=$(mktemp -d)
  "$bin" run "$f" --input "$input" --preempt-every "$every" --keep-running --checkpoint-dir "$dir" >/dev/null 2>&1
  n=0 b=0
  for c in "$dir"/*.mlck; do
    [ -e "$c" ] || continue
    n=$((n + 1))
    out=$("$bin" resume "$c" 2>/dev/null)
    if [ "$out" != "$ref" ]; then b=$((b + 1)); echo "  differs: $c (kept)"; fi
  done
  [ $b -eq 0 ] && rm -rf "$dir"
  echo "$(basename "$f"): $n checkpoints resumed, $b differ"
  total=$((total + n)) bad=$((bad + b))
done
echo "total: $total checkpoints resumed, $bad differ"
[ $bad -eq 0 ]
