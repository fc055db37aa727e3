#!/usr/bin/env bash
# The prepared GPU check (`make gpu-check`), a thin wrapper of benchmarks/gpu_check.py (its
# docstring lists the parts 0-7). Arguments go to gpu_check.py (e.g. --data-root DIR, --out DIR,
# --parts step,trace, --device cpu --quick). Exit status: 0 every part ran (each says ok,
# partial, skipped or failed), 2 the preflight failed, 130 interrupted (SIGINT/SIGTERM), 124
# the outer timeout below stopped it (the part that was running then says "interrupted").
#
# Python: $PYTHON if set, else the project's .venv when it was fully installed (.venv/.installed),
# else the node's python3 with its own CUDA torch. Missing runtime dependencies are installed
# offline from wheelhouse/ (`make wheelhouse`, run where the package index is reachable) into
# build/gpu-deps-<python>, which goes first on PYTHONPATH beside the node's torch.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -f .venv/.installed ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
OUT=gpu-check
prev=""
for arg in "$@"; do  # the output folder, for the failure note below
  if [ "$prev" = "--out" ]; then OUT=$arg; fi
  case $arg in --out=*) OUT=${arg#--out=} ;; esac
  prev=$arg
done
mkdir -p "$OUT"
fail() {  # one line on stderr and in the summary: a check that cannot start still says why
  echo "[gpu-check] $1" >&2
  printf '# GPU check\n\npreflight failed: %s\n' "$1" > "$OUT/gpu_check.md"
  exit 2
}
"$PY" -c "import torch" 2>/dev/null || fail "$PY cannot import torch (set PYTHON=... to the node's python with its CUDA torch)"
if [ -d "${WHEELHOUSE:-wheelhouse}" ]; then
  tag=$("$PY" -c 'import sys; print("%d%d" % sys.version_info[:2])')
  deps="build/gpu-deps-py$tag"
  "$PY" benchmarks/wheelhouse.py install --wheelhouse "${WHEELHOUSE:-wheelhouse}" --target "$deps" \
    || fail "offline install from ${WHEELHOUSE:-wheelhouse} into $deps failed (see above)"
  export PYTHONPATH="$PWD/$deps${PYTHONPATH:+:$PYTHONPATH}"
fi
# Works from a plain checkout too (no editable install needed on the GPU machine).
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
# The Makefile pins 2 threads for the 2-core development machine; a GPU host has more cores.
export OMP_NUM_THREADS=${GPU_CHECK_THREADS:-8}
# The script keeps its own budget and writes its JSON after every part; this outer limit only
# stops a hung kernel (SIGINT first, so the part that was running still writes what it had).
timeout --signal=INT --kill-after=20 "${GPU_CHECK_TIMEOUT:-540}" "$PY" benchmarks/gpu_check.py "$@"
rc=$?
[ -f "$OUT/gpu_check.json" ] || fail "benchmarks/gpu_check.py exited $rc before writing anything (see above)"
exit $rc
