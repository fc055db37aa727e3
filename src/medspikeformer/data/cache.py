"""On-disk cache of decoded, resized arrays: one ``.npz`` per sample and size.

Key = SHA-256 of: dataset name and loader version, the mask rule's version, every source file's
resolved path, byte size, modification and change time (ns), the sample's extra detail (e.g. slice index), the target size, and the
loader options that change pixels. Editing a file, changing the size or an option therefore misses
the cache. Writes go to a temporary file in the same folder and are renamed into place
(``os.replace`` is atomic), so parallel workers never read half a file; an unreadable entry is
treated as a miss and rewritten.

Default location: ``$MEDSPIKEFORMER_CACHE`` or ``$XDG_CACHE_HOME/medspikeformer`` or
``~/.cache/medspikeformer``, sub-folder ``data/<dataset>``.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np

from medspikeformer.outputs import temp_name

from .base import DatasetSource, Sample
from .io import MASK_RULE_VERSION


def default_cache_dir() -> Path:
    env = os.environ.get("MEDSPIKEFORMER_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "medspikeformer"


def _plausible_entry(img: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> bool:
    """Whether a loaded entry is what ``put`` writes: a ``uint8`` ``[H,W]``/``[H,W,3]`` image and
    an integer mask of the same H×W, at ``size``."""
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] != 3):
        return False
    if mask.dtype.kind not in "ub" or mask.shape[:2] != img.shape[:2]:
        return False
    return tuple(img.shape[:2]) == tuple(size)


class ArrayCache:
    """``get``/``put`` decoded arrays under ``root/data/<dataset>/<key>.npz``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser() / "data"
        self.hits = 0
        self.misses = 0
        #: Set at the first failed write: a cache that cannot be written (full disk, read-only or
        #: misplaced folder) is a warning and the run goes on without it, never a crash.
        self.disabled = False

    def key(
        self,
        source: DatasetSource,
        sample: Sample,
        size: tuple[int, int],
        label_map: bool = False,
    ) -> str:
        """Hash of everything the decoded arrays depend on; ``label_map``: masks kept as integer
        ids (absent from the payload when false, so the keys of binary entries are unchanged)."""
        files = []
        for f in sample.files:
            st = f.stat()
            # ctime too: a file replaced with the same size and a restored mtime changes it
            files.append([str(f.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns])
        payload = {
            "dataset": source.name,
            "version": source.version,
            "mask_rule": MASK_RULE_VERSION,
            "files": files,
            "extra": list(sample.extra),
            "size": list(size),
            "options": source.cache_options(),
        }
        if label_map:
            payload["label_map"] = True
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    def path(
        self,
        source: DatasetSource,
        sample: Sample,
        size: tuple[int, int],
        label_map: bool = False,
    ) -> Path:
        return self.root / source.name / f"{self.key(source, sample, size, label_map)}.npz"

    def get(
        self,
        source: DatasetSource,
        sample: Sample,
        size: tuple[int, int],
        label_map: bool = False,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        if self.disabled:
            return None
        try:
            path = self.path(source, sample, size, label_map)
        except OSError:
            return None  # a source file vanished: let the loader report it
        if not path.is_file():
            self.misses += 1
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                img, mask = z["image"], z["mask"]
        except Exception:
            self.misses += 1
            return None
        if not _plausible_entry(img, mask, size):  # damaged or foreign file: decode again
            self.misses += 1
            return None
        self.hits += 1
        return img, mask

    def put(
        self,
        source: DatasetSource,
        sample: Sample,
        size: tuple[int, int],
        img: np.ndarray,
        mask: np.ndarray,
        label_map: bool = False,
    ) -> None:
        if self.disabled:
            return
        try:
            path = self.path(source, sample, size, label_map)
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._disable(exc)
            return
        tmp = temp_name(path.parent, ".tmp-", ".npz")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, image=img, mask=mask)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            self._disable(exc)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _disable(self, exc: OSError) -> None:
        self.disabled = True
        warnings.warn(
            f"{self.root}: cannot write the data cache ({exc.strerror or exc}); continuing "
            "without it (set data.cache_dir to a writable folder, or false)",
            stacklevel=3,
        )
