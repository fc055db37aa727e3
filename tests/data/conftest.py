"""Fixtures: tiny datasets in each published layout (see data_layouts.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_layouts import (
    write_busi,
    write_covid_nifti,
    write_covid_slices,
    write_folder,
    write_isic,
    write_kvasir,
    write_monuseg,
)


@pytest.fixture
def isic_root(tmp_path: Path) -> Path:
    return write_isic(tmp_path / "isic")


@pytest.fixture
def kvasir_root(tmp_path: Path) -> Path:
    return write_kvasir(tmp_path / "kvasir")


@pytest.fixture
def busi_root(tmp_path: Path) -> Path:
    return write_busi(tmp_path / "busi")


@pytest.fixture
def monuseg_root(tmp_path: Path) -> Path:
    return write_monuseg(tmp_path / "monuseg")


@pytest.fixture
def covid_slices_root(tmp_path: Path) -> Path:
    return write_covid_slices(tmp_path / "covid")


@pytest.fixture
def covid_nifti_root(tmp_path: Path) -> Path:
    return write_covid_nifti(tmp_path / "covid_nii")


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "folder")
