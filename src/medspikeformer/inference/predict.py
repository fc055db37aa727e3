"""Prediction on new images: binary masks at the original resolution, overlays, NIfTI volumes.

Inputs: ``.jpg/.jpeg/.png/.bmp/.tif/.tiff`` (decoded by ``medspikeformer.data.read_image``) and
NIfTI ``.nii/.nii.gz`` volumes (nibabel; predicted slice by slice along the last axis after
reorientation to RAS, each slice windowed and oriented exactly as the COVID-19 NIfTI loader
prepares training slices). Every image gets the training normalisation
(``medspikeformer.data.to_model_input``).

Two modes:

- ``sliding`` (default): the image at its own resolution through MONAI's sliding window with
  windows of the training size, Gaussian blending of the window probabilities, in blocks of
  bounded memory (:func:`~medspikeformer.inference.sliding.predict_mask_tiled`). Images smaller
  than the window are zero-padded to it and cropped back.
- ``resize``: the image resized to the training size (area when shrinking, bilinear when
  enlarging — the datasets' rule), predicted whole, and the probability map resized back
  bilinearly to the original size before thresholding.

A model with K > 1 classes writes label maps instead of 0/255 masks: ``uint8`` class indices
(softmax; index c is the c-th class of ``data.labels`` in id order) or region bits (multi-label,
bit c for region c), and its overlay draws each class in its colour
(:mod:`medspikeformer.viz.classes`).

Memory bound: before anything is decoded, the image size is read from the file header and
checked against ``max_pixels`` (default :data:`DEFAULT_MAX_PIXELS`) and against the memory the
machine has available; a too-large image is refused with a ``DataError`` naming the file instead of
risking an out-of-memory kill.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medspikeformer.data.base import resize_image
from medspikeformer.data.probe import (
    IMAGE_SUFFIXES,
    NIFTI_SUFFIXES,
    available_memory,
    expand_inputs,
    is_nifti,
    output_stem,
    pil_pixel_limit,
    probe_shape,
)
from medspikeformer.data.volume import finite_volume, volume_values
from medspikeformer.errors import ConfigError, DataError
from medspikeformer.inference.resample import native_labels, resize_probs
from medspikeformer.inference.sliding import (
    activation_of,
    forward_probs,
    label_image,
    predict_mask_tiled,
    sliding_window_probs,
)
from medspikeformer.models import module_facts
from medspikeformer.outputs import OutputNames, atomic_path, atomic_write_bytes
from medspikeformer.precision import autocast
from medspikeformer.runtime import progress_enabled

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "NIFTI_SUFFIXES",
    "Predictor",
    "expand_inputs",
    "output_stem",
    "probe_shape",
]

#: Largest image (H·W) predicted by default: 25000 × 25000 pixels.
DEFAULT_MAX_PIXELS = 625_000_000
#: Default block side for sliding-window tiling (pixels).
DEFAULT_BLOCK = 2048
#: Overlays of images whose long side exceeds this are written downscaled to it.
OVERLAY_MAX_SIDE = 4096
#: Default CT window (Hounsfield units) for NIfTI volumes: the lung window, as the COVID-19 loader.
DEFAULT_CT_WINDOW = (-1000.0, 400.0)


@dataclass
class Predictor:
    """Predicts binary masks with a loaded model.

    Args:
        model: segmentation model in eval mode.
        train_size: ``(H, W)`` the model was trained at: the sliding window / resize target.
        in_channels: the model's input channels (for ``to_model_input``).
        mode: ``"sliding"`` or ``"resize"`` (see module doc).
        threshold: foreground where ``prob >= threshold``.
        overlap: sliding-window overlap in ``[0, 1)``.
        tta_flip: flip test-time augmentation.
        sw_batch_size: windows per forward pass.
        block: tile side for bounded-memory sliding windows.
        max_pixels: refuse images with more pixels than this.
        progress: show a per-pixel progress bar for images of more than one block.
        ct_window: ``(lo, hi)`` Hounsfield window for NIfTI volumes not already in 0…255.
        percentile_window: instead of ``ct_window``, each volume windowed to this range of its own
            voxel percentiles (``(0.5, 99.5)``: how the Decathlon reader trains).
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto`` (bf16 on CUDA): the autocast of the
            forward passes (probabilities are float32 either way).
        largest_component: keep only the largest connected component of each foreground class
            (:mod:`medspikeformer.inference.postprocess`; a NIfTI volume's in 3-D).
    """

    model: nn.Module
    train_size: tuple[int, int]
    in_channels: int = 3
    mode: str = "sliding"
    threshold: float = 0.5
    overlap: float = 0.25
    tta_flip: bool = False
    sw_batch_size: int = 4
    block: int = DEFAULT_BLOCK
    max_pixels: int = DEFAULT_MAX_PIXELS
    ct_window: tuple[float, float] = DEFAULT_CT_WINDOW
    percentile_window: tuple[float, float] | None = None
    device: torch.device | str = "cpu"
    progress: bool = False
    precision: str = "fp32"
    largest_component: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("sliding", "resize"):
            raise ConfigError(f"mode must be 'sliding' or 'resize', got {self.mode!r}")
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"threshold must be in (0, 1), got {self.threshold}")
        if not 0.0 <= self.overlap < 1.0:
            raise ConfigError(f"overlap must be in [0, 1), got {self.overlap}")
        if self.max_pixels <= 0 or self.block <= 0 or self.sw_batch_size <= 0:
            raise ConfigError("max_pixels, block and sw_batch_size must be positive")
        if not float(self.ct_window[1]) > float(self.ct_window[0]):
            raise ConfigError(
                f"CT window must be (low, high) with high > low, got {self.ct_window}"
            )
        self.model.eval()

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path | Sequence[str | Path],
        *,
        device: torch.device | str = "cpu",
        size: Any = None,
        exact: bool = False,
        **options: Any,
    ) -> Predictor:
        """A predictor for the checkpoint at ``path`` with what training used: its size,
        channels, preprocessing mode (``ckpt["preprocessing"]``) and ``train.threshold``.

        A list of paths is an ensemble (:mod:`medspikeformer.inference.ensemble`: mean
        probabilities; the settings are the first's, which the others must match).
        ``options`` are the other fields (``mode``, ``threshold``, ``tta_flip``, …) and win over
        the checkpoint's; ``size`` (``H`` or ``(H, W)``) overrides the training size. The model
        is optimised for inference (BN folded, compiled LIF) unless ``exact``.
        """
        from medspikeformer.inference.ensemble import load_ensemble_context
        from medspikeformer.runtime import resolve_device

        device = resolve_device(device)
        paths = [path] if isinstance(path, (str, Path)) else list(path)
        ctx = load_ensemble_context(paths, device=device, size=size, optimize=not exact)
        options.setdefault("mode", ctx.preprocessing.mode)
        options.setdefault("threshold", ctx.config.train.threshold)
        return cls(
            model=ctx.model,
            train_size=ctx.train_size,
            in_channels=ctx.in_channels,
            device=device,
            **options,
        )

    # ------------------------------------------------------------------ memory guard
    def _channels(self) -> int:
        return max(3, self.in_channels)

    def activation_bytes(self) -> int:
        """Rough peak of the model's activations for one forward pass of windows (bytes).

        ``16 · T · C · 4 · roi_h · roi_w · windows``: about 16 full-resolution feature maps of the
        first stage (width C, T timesteps, float32) alive at once — measured ≈ 13 for
        MedSpikeFormer (peak RSS 1.9 GiB for 4 windows of 256² at C = 32, T = 4).
        """
        timesteps = self.model.timesteps
        width = int(self.model.config.get("base_channels", 32) or 32)
        windows = self.sw_batch_size if self.mode == "sliding" else 1
        roi = self.train_size[0] * self.train_size[1]
        return 16 * timesteps * width * 4 * roi * windows

    def estimate_bytes(self, height: int, width: int) -> int:
        """Peak memory of predicting one ``height × width`` image, roughly (bytes).

        ``H·W·6`` (decoded ``uint8`` RGB image, ``uint8`` mask and thresholding temporaries), plus
        the float working set of one block with halo (input, MONAI's output and weight maps,
        ``(min(max(H, W), block) + 2·roi)² · (C + 3) · 4``), plus :meth:`activation_bytes`.
        Only the first term grows with the image.
        """
        pixels = height * width
        side = min(max(height, width), self.block) + 2 * max(self.train_size)
        work = side * side * (self.in_channels + 3) * 4
        if self.mode == "resize" and pixels <= self.block * self.block:
            work += pixels * 4 * 2
        return pixels * (self._channels() + 3) + work + self.activation_bytes()

    def check_size(self, path: Path, height: int, width: int) -> None:
        """Refuse (``DataError``) an image too large for ``max_pixels`` or for available memory."""
        pixels = height * width
        if pixels > self.max_pixels:
            raise DataError(
                f"{path}: image of {width}×{height} = {pixels / 1e6:.0f} Mpixel exceeds the "
                f"limit of {self.max_pixels / 1e6:.0f} Mpixel (raise it with --max-pixels if the "
                "machine has the memory)"
            )
        need = self.estimate_bytes(height, width)
        free = available_memory()
        if free is not None and need > 0.9 * free:
            raise DataError(
                f"{path}: image of {width}×{height} needs about {need / 2**30:.1f} GiB but only "
                f"{free / 2**30:.1f} GiB of memory is available; refusing instead of running out "
                "of memory"
            )

    # ------------------------------------------------------------------ one 2-D image
    def _to_input(self, crop: np.ndarray) -> torch.Tensor:
        from medspikeformer.data import to_model_input

        if not crop.flags.writeable:  # read-only decoder output: torch warns on from_numpy
            crop = crop.copy()
        return to_model_input(crop, self.in_channels)

    def predict_array(self, image: np.ndarray, postprocess: bool = True) -> np.ndarray:
        """``uint8`` image ``H×W`` or ``H×W×3`` → ``uint8`` mask ``H×W`` with values 0/255 (a
        K-class model: the label map, see the module docstring). ``postprocess=False`` skips
        ``largest_component`` (a volume's slices: it acts on the whole volume instead)."""
        labels = self._predict_labels(image)
        return self._postprocess(labels) if postprocess else labels

    def _postprocess(self, labels: np.ndarray) -> np.ndarray:
        """``largest_component``: each foreground class's largest connected component only."""
        if not self.largest_component:
            return labels
        from medspikeformer.inference.postprocess import largest_component_labels

        return largest_component_labels(
            labels, module_facts(self.model).num_classes, activation_of(self.model)
        )

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """``uint8`` image ``H×W`` or ``H×W×3`` → ``float32 [K, H, W]`` probabilities at the
        image's own size: ``(1, H, W)`` sigmoid for a binary model, ``(K, H, W)`` softmax (or
        sigmoid regions) for a K-class one. ``resize`` mode: the training-size map resized back
        bilinearly (what :meth:`predict_array` thresholds); ``sliding``: MONAI's blended
        windows over the whole image (one full-size float map, so no block tiling)."""
        height, width = image.shape[:2]
        if self.mode == "resize":
            return resize_probs(self._probs_resized_input(image).numpy(), (height, width))
        x = self._to_input(np.ascontiguousarray(image)).unsqueeze(0).to(self.device)
        with torch.inference_mode(), autocast(self.device, self.precision):
            probs = sliding_window_probs(
                self.model,
                x,
                self.train_size,
                overlap=self.overlap,
                sw_batch_size=self.sw_batch_size,
                tta_flip=self.tta_flip,
            )
        return probs[0].float().cpu().numpy()

    def labels_of_proba(self, probs: np.ndarray) -> np.ndarray:
        """The mask / label map of :meth:`predict_proba`'s output (threshold or argmax, then
        the post-processing): what ``predict --probabilities`` writes beside the map."""
        from medspikeformer.inference.sliding import label_image

        labels = label_image(torch.from_numpy(probs), activation_of(self.model), self.threshold)
        return self._postprocess(labels.numpy())

    def _predict_labels(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        if self.mode == "sliding":
            bar = None
            big = max(height, width) > max(self.block, max(self.train_size))
            if big and progress_enabled(self.progress):
                from tqdm.auto import tqdm

                bar = tqdm(total=height * width, unit="px", unit_scale=True, leave=False)
            with torch.inference_mode(), autocast(self.device, self.precision):
                mask = predict_mask_tiled(
                    self.model,
                    image,
                    self._to_input,
                    self.train_size,
                    threshold=self.threshold,
                    overlap=self.overlap,
                    sw_batch_size=self.sw_batch_size,
                    tta_flip=self.tta_flip,
                    block=self.block,
                    device=self.device,
                    progress=bar.update if bar is not None else None,
                )
            if bar is not None:
                bar.close()
            return mask
        return self._predict_resize(image, height, width)

    def _predict_resize(self, image: np.ndarray, height: int, width: int) -> np.ndarray:
        probs = self._probs_resized_input(image)
        return native_labels(
            probs, (height, width), activation_of(self.model), self.threshold, self.block
        )

    def _probs_resized_input(self, image: np.ndarray) -> torch.Tensor:
        """``[K, h, w]`` probabilities of ``image`` resized to the training size."""
        small = resize_image(image, self.train_size)
        x = self._to_input(np.ascontiguousarray(small)).unsqueeze(0).to(self.device)
        with torch.inference_mode(), autocast(self.device, self.precision):
            return forward_probs(self.model, x, tta_flip=self.tta_flip)[0].float().cpu()

    # ------------------------------------------------------------------ files
    def predict_file(
        self,
        path: Path,
        out_dir: Path,
        stem: str | None = None,
        overlay: bool = False,
        png_slices: bool = False,
        names: OutputNames | None = None,
        probabilities: bool = False,
    ) -> list[Path]:
        """Predict one file and write its outputs into ``out_dir``; returns the paths written.

        Images → ``<stem>_mask.png`` (0/255, original size) and ``<stem>_overlay.png``.
        NIfTI → ``<stem>_mask.nii.gz`` (uint8 labels 0/1, the input's affine and header) and with
        ``png_slices`` one ``<stem>_slices/<stem>_z<k>_mask.png`` per slice (0/255).
        ``probabilities``: also the float32 map, ``<stem>_prob.tif`` (``[K, H, W]``) for an image,
        ``<stem>_prob.nii.gz`` (``[X, Y, Z]``, binary, or ``[X, Y, Z, K]``) for a volume; the
        mask is then the threshold / argmax of that map (:meth:`labels_of_proba`).
        ``names`` (shared by one run) keeps the outputs off the inputs and off each other: a name
        already written by the run gets a ``-N`` suffix and a warning. Every file is written
        atomically and never through a link (:mod:`medspikeformer.outputs`).
        """
        stem = stem or output_stem(path)
        names = names if names is not None else OutputNames([path])
        out_dir.mkdir(parents=True, exist_ok=True)
        if is_nifti(path):
            return self._predict_nifti(path, out_dir, stem, png_slices, names, probabilities)
        from PIL import Image

        from medspikeformer.data import read_image

        height, width = probe_shape(path)
        self.check_size(path, height, width)
        with pil_pixel_limit(self.max_pixels):
            image = read_image(path)
        if image.shape[:2] != (height, width):  # header disagreed with the pixels
            self.check_size(path, *image.shape[:2])
        probs = self.predict_proba(image) if probabilities else None
        mask = self.labels_of_proba(probs) if probs is not None else self.predict_array(image)
        wanted = [out_dir / f"{stem}_mask.png"]
        if overlay:
            wanted.append(out_dir / f"{stem}_overlay.png")
        if probs is not None:
            wanted.append(out_dir / f"{stem}{PROBABILITY_SUFFIX}")
        written = names.claim_group(wanted, source=str(path))
        _save_png(Image.fromarray(mask, mode="L"), written[0])
        if probs is not None:
            _save_tiff(probs, written[-1])
        if overlay:
            picture = (
                _overlay_bounded(image, mask)
                if mask_is_binary(self.model)
                else class_overlay(image, mask, self.model)
            )
            _save_png(Image.fromarray(picture), written[1])
        return written

    def _predict_nifti(
        self,
        path: Path,
        out_dir: Path,
        stem: str,
        png_slices: bool,
        names: OutputNames,
        probabilities: bool = False,
    ) -> list[Path]:
        """Slice by slice exactly as the COVID-19 NIfTI loader prepares training slices.

        The volume is reoriented to RAS, every axial slice (last axis) is windowed (or taken as
        grey when the whole volume lies in 0…255) and turned into the loader's radiological view
        (``axial_slice``); the predicted slice masks are turned back, stacked and reoriented to the
        input's voxel order, so the mask volume shares the input's grid, affine and header.
        """
        import nibabel as nib
        from nibabel.orientations import (
            apply_orientation,
            axcodes2ornt,
            io_orientation,
            ornt_transform,
        )
        from PIL import Image

        from medspikeformer.data.datasets.covid19 import axial_slice, window_ct

        shape = probe_shape(path)
        if len(shape) == 4 and shape[3] == 1:
            shape = shape[:3]
        if len(shape) not in (2, 3):
            raise DataError(f"{path}: expected a 2-D or 3-D NIfTI volume, got shape {shape}")
        voxels = int(np.prod(shape))
        plane = sorted(shape)[-2:]  # the slice plane is known only after reorientation
        self.check_size(path, plane[0], plane[1])
        free = available_memory()
        if free is not None and voxels * 10 > 0.9 * free:  # float32 volume + RAS copy + labels
            raise DataError(
                f"{path}: volume {'×'.join(map(str, shape))} needs about "
                f"{voxels * 10 / 2**30:.1f} GiB but only {free / 2**30:.1f} GiB is available"
            )
        try:
            vol = nib.load(str(path))
            data = volume_values(vol, path).reshape(shape)
        except DataError:
            raise
        except Exception as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"{path}: unreadable NIfTI volume ({msg})") from None
        data = finite_volume(data, path)
        flat = data.ndim == 2
        if flat:
            data = data[..., None]
        to_ras = io_orientation(vol.affine)
        ras = apply_orientation(data, to_ras)
        del data
        grey = bool(ras.min() >= 0 and ras.max() <= 255)
        window = self.ct_window
        if self.percentile_window is not None and not grey:  # the case's own range, as trained
            lo, hi = (float(v) for v in np.percentile(ras, self.percentile_window))
            window = (lo, hi if hi > lo else lo + 1.0)
        labels_ras = np.zeros(ras.shape, dtype=np.uint8)
        k = module_facts(self.model).num_classes
        probs_ras = np.zeros((*ras.shape, k), np.float32) if probabilities else None
        slice_dir = out_dir / f"{stem}_slices"
        written: list[Path] = []
        for z in range(ras.shape[2]):
            view = axial_slice(ras, z)
            img = np.round(view).astype(np.uint8) if grey else window_ct(view, window)
            if probs_ras is not None:
                probs = self.predict_proba(img)
                mask = label_image(
                    torch.from_numpy(probs), activation_of(self.model), self.threshold
                )
                mask = mask.numpy()
                for c in range(k):  # inverse of axial_slice
                    probs_ras[:, :, z, c] = np.rot90(probs[c][:, ::-1], k=-1)
            else:
                mask = self.predict_array(img, postprocess=False)
            ids = mask // 255 if mask_is_binary(self.model) else mask
            labels_ras[:, :, z] = np.rot90(ids[:, ::-1], k=-1)  # inverse of axial_slice
        # the post-processing sees the whole volume: components connect across slices
        labels_ras = self._postprocess(labels_ras)
        if png_slices:
            scale = 255 if mask_is_binary(self.model) else 1
            for z in range(ras.shape[2]):
                written.append(names.claim(slice_dir / f"{stem}_z{z:04d}_mask.png"))
                view = (axial_slice(labels_ras, z) * scale).astype(np.uint8)
                _save_png(Image.fromarray(view, mode="L"), written[-1])
        back = ornt_transform(axcodes2ornt("RAS"), to_ras)
        labels = apply_orientation(labels_ras, back)
        labels = np.ascontiguousarray(labels[..., 0] if flat else labels, dtype=np.uint8)
        target = names.claim(out_dir / f"{stem}_mask.nii.gz", source=str(path))
        atomic_write_bytes(target, _nifti_gz_like(vol, labels))
        if probs_ras is not None:
            probs_vol = apply_orientation(probs_ras, back)
            probs_vol = probs_vol[..., 0, :] if flat else probs_vol
            probs_vol = np.ascontiguousarray(probs_vol[..., 0] if k == 1 else probs_vol)
            prob_target = names.claim(out_dir / f"{stem}_prob.nii.gz", source=str(path))
            atomic_write_bytes(prob_target, _nifti_gz_like(vol, probs_vol.astype(np.float32)))
            written.insert(0, prob_target)
        return [target, *written]


#: The probability map of a 2-D image: float32 ``[K, H, W]`` TIFF (tifffile, ImageJ, napari).
PROBABILITY_SUFFIX = "_prob.tif"


def _save_tiff(probs: np.ndarray, target: Path) -> None:
    """Write a float32 ``[K, H, W]`` map as a TIFF atomically."""
    import tifffile

    with atomic_path(target) as tmp:
        tifffile.imwrite(tmp, np.ascontiguousarray(probs, np.float32), photometric="minisblack")


def _save_png(image: Any, target: Path) -> None:
    """Write a Pillow image as PNG atomically (a full disk leaves no truncated file)."""
    with atomic_path(target) as tmp:
        image.save(tmp, format="PNG")


def _overlay_bounded(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Overlay of ``mask`` on ``image``, downscaled so the long side is ≤ OVERLAY_MAX_SIDE."""
    from medspikeformer.viz.overlay import overlay

    return overlay(*_bounded(image, mask))


def _bounded(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (area-averaged) and its mask or label map (nearest) downscaled so the long side
    is ≤ OVERLAY_MAX_SIDE; unchanged when already that small."""
    import cv2

    height, width = labels.shape
    scale = OVERLAY_MAX_SIDE / max(height, width)
    if scale >= 1.0:
        return image, labels
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return (
        cv2.resize(image, size, interpolation=cv2.INTER_AREA),
        cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST),
    )


def mask_is_binary(model: nn.Module) -> bool:
    """Whether ``model`` writes 0/255 masks (one output channel) rather than label maps."""
    return module_facts(model).num_classes == 1


def class_overlay(image: np.ndarray, labels: np.ndarray, model: nn.Module) -> np.ndarray:
    """Class-colour overlay of a K-class label map (:func:`label_image`'s encoding),
    downscaled like :func:`_overlay_bounded`."""
    from medspikeformer.viz.classes import overlay_labels

    k = int(model.num_classes)
    image, labels = _bounded(image, labels)
    if activation_of(model) == "softmax":
        planes = np.stack([labels == c for c in range(k)])
    else:  # region bits; plane 0 stands for "no region" so that colours start at class 1
        regions = [(labels >> c) & 1 > 0 for c in range(k)]
        planes = np.stack([~np.any(regions, axis=0), *regions])
    return overlay_labels(image, planes)


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """Output stems for ``paths``; repeated stems get ``-2``, ``-3`` … in input order."""
    seen: dict[str, int] = {}
    stems = []
    for p in paths:
        stem = output_stem(p)
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return stems


def predict_paths(
    predictor: Predictor,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    overlay: bool = False,
    png_slices: bool = False,
    progress: bool = False,
    recursive: bool = False,
    skipped: list[str] | None = None,
    probabilities: bool = False,
) -> dict[Path, list[Path]]:
    """Expand ``inputs`` (files and folders; ``recursive``: subfolders too) and predict each;
    returns input → written files. What folders hold but is not read goes to ``skipped``."""
    paths = expand_inputs(inputs, recursive=recursive, skipped=skipped)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{out_dir}: cannot create the output folder ({exc.strerror})") from None
    if not os.access(out_dir, os.W_OK):
        raise DataError(f"{out_dir}: output folder is not writable")
    stems = unique_stems(paths)
    names = OutputNames(paths)
    for path, stem in zip(paths, stems, strict=True):
        # Refuse before predicting anything: an output name that is one of the inputs
        # (``predict imgs --out imgs`` with an input x_mask.png beside x.png).
        kinds = ["_mask.nii.gz"] if is_nifti(path) else ["_mask.png", "_overlay.png"]
        kinds = kinds[: 2 if overlay else 1]
        if probabilities:
            kinds.append("_prob.nii.gz" if is_nifti(path) else PROBABILITY_SUFFIX)
        for kind in kinds:
            names.check_not_input(out_dir / f"{stem}{kind}", source=str(path))
    iterator: Any = zip(paths, stems)
    if progress_enabled(progress):
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, total=len(paths), desc="predict", unit="image")
    results: dict[Path, list[Path]] = {}
    for path, stem in iterator:
        results[path] = predictor.predict_file(
            path,
            out_dir,
            stem=stem,
            overlay=overlay,
            png_slices=png_slices,
            names=names,
            probabilities=probabilities,
        )
    return results


def _nifti_gz_like(vol: Any, data: np.ndarray) -> bytes:
    """``data`` as a gzipped NIfTI file with ``vol``'s geometry (affine, header) and ``data``'s
    own dtype, unscaled (slope 1, intercept 0)."""
    import nibabel as nib

    header = vol.header.copy()
    header.set_data_dtype(data.dtype)
    image = nib.Nifti1Image(data, vol.affine, header)
    image.header.set_slope_inter(1.0, 0.0)
    return gzip.compress(image.to_bytes(), compresslevel=6)
