#!/usr/bin/env bash
# The offline install of a GPU node, tried beside another Python and torch than the project's
# .venv (issue 24): `make wheelhouse` for that Python's version, `pip --no-index` of the wheels
# into a fresh --target folder beside the interpreter's own torch, then the smoke path from there
# (import, `medspikeformer --help`, a 1-epoch synthetic train, gpu_check's CPU form of the
# preflight and the paper step). Run where the package index is reachable (for the wheelhouse);
# the install and the smoke path read nothing from the network.
#
#   benchmarks/offline_install_check.sh PYTHON [WORK]
#
# PYTHON: an interpreter whose environment holds torch >= 2.6 and none of the project's other
# dependencies (e.g. a python3.11 venv with `pip install torch==2.6.0`); WORK (default
# build/offline-check) receives the wheelhouse (kept and reused; remove it to fetch anew), the
# target folder (made afresh), the run and the check's output. The check runs with wide time
# ceilings (a busy machine must not skip its rows).
# Exit status: 0 every stage passed, else the failing stage's status (its name on stderr).
set -u
cd "$(dirname "$0")/.."
PY=${1:?usage: benchmarks/offline_install_check.sh PYTHON [WORK]}
WORK=${2:-build/offline-check}
WORK=$(mkdir -p "$WORK" && cd "$WORK" && pwd)
ver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || exit 2
house="$WORK/wheelhouse-py$ver"
target="$WORK/target-py$ver"
stage() {  # name, command...: run, say ok or fail with the status
  local name=$1; shift
  echo "[offline-check] $name: $*"
  "$@"
  local rc=$?
  if [ $rc -ne 0 ]; then echo "[offline-check] FAILED $name (exit $rc)" >&2; exit $rc; fi
  echo "[offline-check] ok $name"
}
rm -rf "$target" "$WORK/run" "$WORK/gpu-check"
stage "node torch" "$PY" -c 'import torch; print("python", __import__("sys").version.split()[0], "torch", torch.__version__)'
if [ -f "$house/requirements.txt" ]; then  # fetched by an earlier run: remove it to fetch anew
  echo "[offline-check] ok wheelhouse (reused $house)"
else
  stage "wheelhouse" make --no-print-directory wheelhouse WHEEL_PYTHON="$ver" WHEELHOUSE="$house"
fi
stage "offline install" "$PY" benchmarks/wheelhouse.py install --wheelhouse "$house" --target "$target"
if ls "$target" | grep -qi '^torch'; then echo "[offline-check] FAILED: torch was installed into $target" >&2; exit 3; fi
export PYTHONPATH="$target:$PWD/src"
export PIP_NO_INDEX=1  # nothing below may reach the index
stage "import" "$PY" -c 'import torch, medspikeformer, monai; print("medspikeformer from", medspikeformer.__file__, "torch", torch.__version__, "from", torch.__file__)'
stage "--help" "$PY" -m medspikeformer --help
stage "train" "$PY" -m medspikeformer train --config synthetic --out "$WORK/run" --epochs 1 \
  --batch-size 2 --size 32 --split 50/25/25 --num-workers 0 --device cpu --no-progress \
  --set=data.options.num_samples=8 --set=data.cache_dir=false \
  --set=model.base_channels=4 --set=model.num_units=2 --set=model.timesteps=2 --set=model.head_dim=4
stage "gpu_check preflight+step" "$PY" benchmarks/gpu_check.py --device cpu --quick \
  --parts preflight,step --out "$WORK/gpu-check" --budget-s 1800 --time-scale 10
for part in part0_preflight part2_step; do
  "$PY" -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["status"] != "ok")' \
    "$WORK/gpu-check/$part.json" \
    || { echo "[offline-check] FAILED: gpu_check $part did not say ok" >&2; exit 4; }
done
echo "[offline-check] all stages passed: CPython $ver beside torch $("$PY" -c 'import torch; print(torch.__version__)')"
