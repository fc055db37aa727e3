"""``python -m medspikeformer`` (also what ``torchrun -m medspikeformer`` runs)."""

import sys

from medspikeformer.cli import entry

sys.exit(entry())
