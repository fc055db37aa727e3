"""Training dynamics of one run: firing rate per LIF layer and gradient norm per stage, per epoch.

Runs the engine's real training loop for a config (``medspikeformer train``'s path) and records,
after every epoch, from the epoch's training steps:

* ``rate/<layer>``  — mean firing rate of every LIF layer (spikes / elements, all timesteps),
* ``grad/<stage>``  — L2 norm of the gradient of each parameter group (stem, unit i encoder,
  attention i, decoder i, head, stage heads) averaged over the epoch's steps,
* ``dead/<layer>``  — fraction of channels of a LIF layer that never fired in the epoch.

    python benchmarks/training_dynamics.py --config kvasir --recipe cpu-quick \
        --data-root ../shared/data/kvasir-seg --out runs/dyn --set train.epochs=10

Writes ``OUT/dynamics.csv`` (one row per epoch) and ``OUT/dynamics.png`` beside the run directory.
Used for the recipe sweep in docs/results.md ("why the spiking model learned less").
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

from medspikeformer.engine import Callback, TrainingStep, train
from medspikeformer.engine.config import load_config
from medspikeformer.neurons import LIFNeuron


def param_group(name: str) -> str:
    """Map a MedSpikeFormer parameter name to its stage group (``enc1``, ``attn2``, ``dec3`` …)."""
    parts = name.split(".")
    top = parts[0]
    if top in ("down", "pe_conv"):  # down[i-1] / pe_conv[i-1] belong to unit i+1
        return f"enc{int(parts[1]) + 2}"
    if top == "pe_sc":
        return f"enc{int(parts[1]) + 1}"
    if top == "stem":
        return "enc1"
    if top == "attn":
        return f"attn{int(parts[1]) + 1}"
    if top == "dec":
        return f"dec{int(parts[1]) + 1}"
    return top


class Recorder(Callback):
    """Training-loop hooks: forward hooks on LIF layers and gradient accumulation per parameter
    group after every applied step; one row per epoch in ``rows``."""

    def __init__(self) -> None:
        self.spikes: dict[str, float] = defaultdict(float)
        self.elements: dict[str, float] = defaultdict(float)
        self.channel_fired: dict[str, torch.Tensor] = {}
        self.grad_sq: dict[str, float] = defaultdict(float)
        self.steps = 0
        self.rows: list[dict[str, float]] = []

    def on_train_start(self, step: TrainingStep) -> None:
        self.model = step.student
        self.handles = [
            m.register_forward_hook(self._hook(n))
            for n, m in self.model.named_modules()
            if isinstance(m, LIFNeuron)
        ]

    def on_step_end(self, index: int, terms: object) -> None:
        self.after_backward()  # the step's gradients are still in .grad

    def on_epoch_end(self, epoch: int, row: dict) -> None:
        self.rows.append({"epoch": epoch, "val_dsc": row["val_dsc"], **self.epoch_row()})

    def _hook(self, name: str):
        def hook(_m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
            if not _m.training:
                return
            s = out.detach()
            self.spikes[name] += float(s.sum())
            self.elements[name] += s.numel()
            if s.dim() >= 3:  # [T, B, C, ...] → channels that fired at least once
                fired = s.transpose(0, 2).flatten(1).amax(1) > 0
                prev = self.channel_fired.get(name)
                self.channel_fired[name] = fired if prev is None else (prev | fired)

        return hook

    def after_backward(self) -> None:
        sq: dict[str, float] = defaultdict(float)
        for n, p in self.model.named_parameters():
            if p.grad is not None:
                sq[param_group(n)] += float(p.grad.detach().pow(2).sum())
        for k, v in sq.items():
            self.grad_sq[k] += math.sqrt(v)
        self.steps += 1

    def epoch_row(self) -> dict[str, float]:
        row: dict[str, float] = {}
        for name in self.spikes:
            row[f"rate/{name}"] = self.spikes[name] / max(self.elements[name], 1)
            fired = self.channel_fired.get(name)
            if fired is not None:
                row[f"dead/{name}"] = 1.0 - float(fired.float().mean())
        for k, v in self.grad_sq.items():
            row[f"grad/{k}"] = v / max(self.steps, 1)
        self.spikes.clear()
        self.elements.clear()
        self.channel_fired.clear()
        self.grad_sq.clear()
        self.steps = 0
        return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="kvasir")
    ap.add_argument("--recipe", default=None)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", required=True)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)

    overrides: dict = {"out": args.out, "train": {"progress": False}}
    if args.data_root:
        overrides["data"] = {"root": args.data_root}
    cfg = load_config(args.config, recipe=args.recipe, overrides=overrides, sets=args.set)

    rec = Recorder()
    train(cfg, log=None, callbacks=[rec])
    rows = rec.rows
    out = Path(args.out)
    keys = sorted({k for r in rows for k in r} - {"epoch", "val_dsc"})
    with open(out / "dynamics.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["epoch", "val_dsc", *keys])
        for r in rows:
            w.writerow([r["epoch"], r["val_dsc"], *(f"{r.get(k, float('nan')):.5g}" for k in keys)])
    _plot(rows, keys, out / "dynamics.png")
    print(f"wrote {out / 'dynamics.csv'} and {out / 'dynamics.png'}")
    return 0


def _plot(rows: list[dict[str, float]], keys: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    epochs = [r["epoch"] for r in rows]
    for ax, prefix, title in zip(
        axes,
        ("rate/", "dead/", "grad/"),
        ("firing rate per LIF layer", "never-firing channel fraction", "grad norm per stage"),
    ):
        for k in (k for k in keys if k.startswith(prefix)):
            ax.plot(epochs, [r.get(k, float("nan")) for r in rows], label=k[len(prefix) :])
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if prefix == "grad/":
            ax.set_yscale("log")
        ax.legend(fontsize=5, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
