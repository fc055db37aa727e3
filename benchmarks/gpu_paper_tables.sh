#!/usr/bin/env bash
# The paper recipe on one GPU, as one prepared run (docs/results.md, "Paper recipe on a GPU").
#
#   bash benchmarks/gpu_paper_tables.sh [DATA_ROOT] [OUT] [MINUTES]
#
# Trains Table 1's MedSpikeFormer row at src/medspikeformer/configs/kvasir.yaml (256², batch 8, T = 4, joint ANN
# teacher, Adam 1e-4, plateau), then `experiment compare` and `experiment ablation` at the same
# recipe (the compare rows hold both neurons: the paper's binary LIF and integer spikes), each part under its share of MINUTES (default 8) of wall time. A part cut by its time
# limit keeps its finished epochs (last.pt); re-running the same command resumes every row.
# Nothing is downloaded: the dataset is read from DATA_ROOT (default ../shared/data/kvasir-seg).
# Writes OUT/{reproduce,compare,ablation}/ (tables, dsc_over_time.png) and OUT/log.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
DATA_ROOT=${1:-../shared/data/kvasir-seg}
OUT=${2:-exp/gpu-paper}
MINUTES=${3:-8}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu and EXTRA="--set ..." for a dry run on a CPU machine
EXTRA=${EXTRA:-}
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
# A plain checkout (no editable install) must find the package too.
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
status=0  # the worst part's exit status; a part cut by its time limit (124) is expected
if [ ! -d "$DATA_ROOT" ]; then
    echo "error: $DATA_ROOT: no such dataset folder (pass the Kvasir-SEG root as the first argument)"
    exit 2
fi
mkdir -p "$OUT"
# Shares of the budget: the reproduce row first (the curve users ask for), then the tables.
secs=$((MINUTES * 60))
part() {  # part NAME SHARE_PERCENT ARGS...
    local name=$1 share=$2
    shift 2
    local limit=$((secs * share / 100))
    echo "== $name: up to ${limit}s" | tee -a "$OUT/log.txt"
    timeout --signal=INT --kill-after=30 "$limit" \
        "$PY" -m medspikeformer experiment "$name" --dataset kvasir --data-root "$DATA_ROOT" \
        --device "$DEVICE" --out "$OUT/$name" "$@" $EXTRA 2>&1 | tee -a "$OUT/log.txt"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc" | tee -a "$OUT/log.txt"
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; then status=$rc; fi
}
part reproduce 50
part compare 30 --models medspikeformer medspikeformer_ilif sdt ann unet
part ablation 20
# A part cut by its limit wrote no table; its curves are still in rows/*/seed0/metrics.csv.
"$PY" - "$OUT" <<'PYEOF'
import sys
from pathlib import Path
from medspikeformer.experiments.plots import plot_dsc_over_time
out = Path(sys.argv[1])
runs = {f"{p.parts[-4]}/{p.parts[-3]}": p for p in sorted(out.glob("*/rows/*/seed0/metrics.csv"))}
if runs:
    print("wrote", plot_dsc_over_time(runs, out / "dsc_over_time.png", title="paper recipe, GPU"))
PYEOF
echo "wrote $OUT (log.txt, */results.md, dsc_over_time.png)"
exit $status
