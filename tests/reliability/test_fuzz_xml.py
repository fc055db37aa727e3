"""Fuzzing the MoNuSeg Aperio-XML polygon parser and rasteriser (issue 6, part 6).

Property: for any bytes, ``read_aperio_polygons`` returns a list of float ``[n, 2]`` arrays
(n ≥ 3) or raises ``DataError`` naming the file; ``rasterise_aperio_xml`` returns a boolean mask of
exactly the requested shape or raises ``DataError``. Inputs: mutations of a valid two-region
annotation file (byte flips/inserts/deletes/truncation), structured mutations of the vertex
attributes (any text, huge/NaN/infinite/negative numbers), and random bytes behind XML-ish
prefixes (including a DOCTYPE with entities).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medspikeformer.data.datasets.monuseg import rasterise_aperio_xml, read_aperio_polygons
from medspikeformer.errors import DataError

from .fuzzing import (
    CASE_TIME_LIMIT,
    MONUSEG_XML,
    QUICK_EXAMPLES,
    SLOW_EXAMPLES,
    XML_PREFIXES,
    FuzzLog,
    mutate,
    time_limit,
)
from .fuzzing import mutations as mutation_lists

SHAPE = (24, 20)


def check_xml(path: Path, log: FuzzLog) -> None:
    """Run parser and rasteriser on ``path``; assert the property; log outcomes."""
    log.case()
    try:
        with time_limit(CASE_TIME_LIMIT, f"read_aperio_polygons({path.name})"):
            polys = read_aperio_polygons(path)
    except DataError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc), str(exc)
        log.add("parse:DataError")
    else:
        assert isinstance(polys, list)
        for p in polys:
            assert p.dtype == np.float64 and p.ndim == 2 and p.shape[1] == 2 and p.shape[0] >= 3
        log.add("parse:ok")
    try:
        with time_limit(CASE_TIME_LIMIT, f"rasterise_aperio_xml({path.name})"):
            mask = rasterise_aperio_xml(path, SHAPE)
    except DataError as exc:
        assert str(path) in str(exc), str(exc)
        log.add("raster:DataError")
    else:
        assert mask.dtype == np.bool_ and mask.shape == SHAPE
        log.add("raster:ok")


def test_valid_seed_rasterises(tmp_path: Path) -> None:
    path = tmp_path / "seed.xml"
    path.write_bytes(MONUSEG_XML)
    assert len(read_aperio_polygons(path)) == 2
    assert rasterise_aperio_xml(path, SHAPE).sum() > 50


_number_text = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e309", "-0", "", " 3 ", "1_0", "0x10", "١٢"]),
    st.text(max_size=12),
)


def _fuzz(tmp_path: Path, examples: int, log: FuzzLog) -> None:
    counter = itertools.count()

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        kind=st.sampled_from(["mutated", "vertices", "random"]),
        ops=mutation_lists,
        numbers=st.lists(_number_text, min_size=1, max_size=8),
        prefix=st.sampled_from(XML_PREFIXES),
        body=st.binary(max_size=400),
    )
    def run(kind: str, ops: list, numbers: list[str], prefix: bytes, body: bytes) -> None:
        if kind == "mutated":
            data = mutate(MONUSEG_XML, ops)
        elif kind == "vertices":
            text = MONUSEG_XML.decode()
            values = iter(itertools.cycle(numbers))
            for attr in ('X="15.75"', 'Y="4.5"', 'X="16.0"', 'Y="14.125"', 'X="10"', 'Y="19.9"'):
                key = attr.split("=")[0]
                value = next(values).replace('"', "&quot;").replace("<", "&lt;")
                value = value.replace("&", "&amp;") if "&quot;" not in value else value
                text = text.replace(attr, f'{key}="{value}"', 1)
            data = text.encode("utf-8", "surrogatepass")
        else:
            data = prefix + body
        path = tmp_path / f"case{next(counter)}.xml"
        path.write_bytes(data)
        try:
            check_xml(path, log)
        finally:
            path.unlink()

    run()


def test_fuzz_xml_quick(tmp_path: Path, record_property: object) -> None:
    """Mutated/structured/random XML: only DataError escapes (quick variant)."""
    log = FuzzLog("monuseg xml (quick)")
    _fuzz(tmp_path, QUICK_EXAMPLES, log)
    log.report(record_property)
    assert log.cases >= QUICK_EXAMPLES // 2
    assert log.outcomes["parse:DataError"] > 0


@pytest.mark.slow
def test_fuzz_xml_slow(tmp_path: Path, record_property: object) -> None:
    """As the quick variant, with ``SLOW_EXAMPLES`` cases."""
    log = FuzzLog("monuseg xml (slow)")
    _fuzz(tmp_path, SLOW_EXAMPLES, log)
    log.report(record_property)
    assert log.cases >= SLOW_EXAMPLES // 2
