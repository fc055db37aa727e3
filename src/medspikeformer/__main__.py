"""``python -m medspikeformer`` (also what ``torchrun -m medspikeformer`` runs)."""

import sys

from medspikeformer.cli import main

sys.exit(main())
