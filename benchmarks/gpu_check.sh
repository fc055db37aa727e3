#!/usr/bin/env bash
# The prepared GPU check (`make gpu-check`), a thin wrapper of benchmarks/gpu_check.py:
# (a) gpu-marked tests, (b) a training step of every model in fp32 and bf16, (c) 3 minutes of
# MedSpikeFormer on the Kvasir sample and its test DSC, (d) gpu-check/gpu_check.{json,md}.
# Arguments go to gpu_check.py (e.g. --data-root DIR, --out DIR, --device cpu --quick).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
# Works from a plain checkout too (no editable install needed on the GPU machine).
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
# The Makefile pins 2 threads for the 2-core development machine; a GPU host has more cores.
export OMP_NUM_THREADS=${GPU_CHECK_THREADS:-8}
# The script keeps its own 480 s budget and writes its JSON after every part; this outer limit
# only stops a hung kernel (SIGINT first, so the last part's partial results are still written).
exec timeout --signal=INT --kill-after=20 "${GPU_CHECK_TIMEOUT:-510}" "$PY" benchmarks/gpu_check.py "$@"
