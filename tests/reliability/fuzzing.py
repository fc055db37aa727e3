"""Building blocks of the fuzz tests (issue 6, part 6): seed files, byte mutations, case counts.

Seeds are small valid files written here with Pillow and tifffile (PNG RGB/grey/RGBA/16-bit/
palette, JPEG RGB/grey, BMP, TIFF uint8/uint16/deflate, binary masks 0/255 and 0/1, and a MoNuSeg
Aperio XML). A hypothesis strategy mutates them — flip, insert, delete, overwrite bytes, truncate —
with positions biased towards the header, where the parsers make their decisions.

Case counts: every fuzz test counts the cases it ran and how each ended; the counts are printed
(``pytest -s``), attached to the test report (``record_property``, visible in JUnit XML) and, when
``MSF_FUZZ_REPORT`` names a file, appended to it as JSON lines. ``MSF_FUZZ_EXAMPLES`` overrides the
number of cases of the quick (non-slow) variants.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from hypothesis import strategies as st

QUICK_EXAMPLES = int(os.environ.get("MSF_FUZZ_EXAMPLES", "80"))
SLOW_EXAMPLES = int(os.environ.get("MSF_FUZZ_SLOW_EXAMPLES", "10000"))


def _pil_bytes(arr: np.ndarray, fmt: str, mode: str | None = None, **save: object) -> bytes:
    from PIL import Image

    im = Image.fromarray(arr, mode=mode) if mode else Image.fromarray(arr)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **save)
    return buf.getvalue()


def _tiff_bytes(arr: np.ndarray, **kw: object) -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **kw)
    return buf.getvalue()


@lru_cache(maxsize=1)
def image_seeds() -> dict[str, tuple[str, bytes]]:
    """name → (file suffix, bytes of a small valid image)."""
    rng = np.random.default_rng(6)
    rgb = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (20, 24), dtype=np.uint8)
    rgba = rng.integers(0, 256, (20, 24, 4), dtype=np.uint8)
    g16 = rng.integers(0, 65536, (20, 24), dtype=np.uint16)
    mask = np.zeros((20, 24), np.uint8)
    mask[5:15, 6:18] = 255
    palette = _pil_bytes(rgb, "PNG")  # re-encoded below as P mode
    from PIL import Image

    buf = io.BytesIO()
    Image.open(io.BytesIO(palette)).convert("P", palette=Image.Palette.ADAPTIVE).save(buf, "PNG")
    return {
        "png_rgb": (".png", _pil_bytes(rgb, "PNG")),
        "png_grey": (".png", _pil_bytes(grey, "PNG")),
        "png_rgba": (".png", _pil_bytes(rgba, "PNG")),
        "png_16bit": (".png", _pil_bytes(g16, "PNG")),
        "png_palette": (".png", buf.getvalue()),
        "png_mask_0_255": (".png", _pil_bytes(mask, "PNG")),
        "png_mask_0_1": (".png", _pil_bytes(mask // 255, "PNG")),
        "jpg_rgb": (".jpg", _pil_bytes(rgb, "JPEG", quality=90)),
        "jpg_grey": (".jpg", _pil_bytes(grey, "JPEG", quality=90)),
        "bmp_rgb": (".bmp", _pil_bytes(rgb, "BMP")),
        "tif_rgb": (".tif", _tiff_bytes(rgb, photometric="rgb")),
        "tif_uint16": (".tif", _tiff_bytes(g16)),
        "tif_deflate": (".tif", _tiff_bytes(rgb, photometric="rgb", compression="zlib")),
        "tif_tiled": (".tif", _tiff_bytes(rgb, photometric="rgb", tile=(16, 16))),
    }


MONUSEG_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<Annotations MicronsPerPixel="0.252000">
<Annotation Id="1" Name="" ReadOnly="0" Type="4" LineColor="65280" Visible="1">
<Attributes><Attribute Name="Description" Id="0" Value=""/></Attributes>
<Regions>
<RegionAttributeHeaders/>
<Region Id="1" Type="0" Zoom="1" Selected="0" ImageLocation="" ImageFocus="-1" Length="40.5"
 Area="100.25" LengthMicrons="10.2" AreaMicrons="6.3" Text="" NegativeROA="0" InputRegionId="0"
 Analyze="1" DisplayId="1">
<Attributes/>
<Vertices>
<Vertex X="3.5" Y="4.25" Z="0"/>
<Vertex X="15.75" Y="4.5" Z="0"/>
<Vertex X="16.0" Y="14.125" Z="0"/>
<Vertex X="4.0" Y="15.5" Z="0"/>
</Vertices>
</Region>
<Region Id="2" Type="0" Zoom="1" Selected="0" ImageLocation="" ImageFocus="-1" Length="20"
 Area="30" LengthMicrons="5" AreaMicrons="2" Text="" NegativeROA="0" InputRegionId="0"
 Analyze="1" DisplayId="2">
<Attributes/>
<Vertices>
<Vertex X="10" Y="10" Z="0"/>
<Vertex X="19.5" Y="11" Z="0"/>
<Vertex X="12" Y="19.9" Z="0"/>
</Vertices>
</Region>
</Regions>
<Plots/>
</Annotation>
</Annotations>
"""

MAGIC_PREFIXES = (
    b"",
    b"\x89PNG\r\n\x1a\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"\xff\xd8\xff",
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"II+\x00\x08\x00\x00\x00",
    b"GIF89a",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
)

XML_PREFIXES = (
    b"",
    b"<?xml version='1.0'?>",
    b"<Annotations>",
    b"<Annotations><Annotation><Regions><Region><Vertices>",
    b'<!DOCTYPE a [<!ENTITY e "x">]>',
)

# A mutation: (kind, position, payload). Positions are taken modulo the current length; half of
# them fall in the first 64 bytes (headers).
_position = st.one_of(st.integers(0, 63), st.integers(0, 1 << 20))
mutation = st.one_of(
    st.tuples(st.just("flip"), _position, st.integers(1, 255)),
    st.tuples(st.just("insert"), _position, st.binary(min_size=1, max_size=24)),
    st.tuples(st.just("delete"), _position, st.integers(1, 64)),
    st.tuples(st.just("overwrite"), _position, st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("truncate"), _position, st.none()),
)
mutations = st.lists(mutation, min_size=1, max_size=6)


def mutate(data: bytes, ops: list[tuple[str, int, object]]) -> bytes:
    """Apply byte mutations in order; always returns bytes (possibly empty)."""
    buf = bytearray(data)
    for kind, pos, arg in ops:
        n = len(buf)
        p = pos % (n + 1) if n else 0
        if kind == "flip" and n:
            buf[min(p, n - 1)] ^= int(arg)  # type: ignore[arg-type]
        elif kind == "insert":
            buf[p:p] = arg  # type: ignore[assignment]
        elif kind == "delete":
            del buf[p : p + int(arg)]  # type: ignore[arg-type]
        elif kind == "overwrite":
            buf[p : p + len(arg)] = arg  # type: ignore[arg-type]
        elif kind == "truncate":
            del buf[p:]
    return bytes(buf)


#: Seconds one reader call may take on a tiny fuzz file before the case counts as a hang.
CASE_TIME_LIMIT = 60.0


class ReaderHang(BaseException):
    """A reader took longer than CASE_TIME_LIMIT on one input."""


class ReaderTimeout(AssertionError):
    """The test-facing form of :class:`ReaderHang`: a plain assertion failure."""


@contextlib.contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Raise :class:`ReaderHang` in this thread if the block runs longer than ``seconds``."""

    def on_alarm(_sig: int, _frame: object) -> None:
        raise ReaderHang(f"{what}: still running after {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except ReaderHang as exc:
        # Re-raised from Python code: raised inside a C extension, its traceback has frames
        # without line numbers, which pytest cannot format.
        raise ReaderTimeout(str(exc)) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class FuzzLog:
    """How many cases a fuzz test ran and how each ended."""

    name: str
    cases: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def case(self) -> None:
        """Count one input (one file / one document)."""
        self.cases += 1

    def add(self, outcome: str) -> None:
        """Count how one reader ended on the current input."""
        self.outcomes[outcome] += 1

    def report(self, record_property: object) -> None:
        """Print the counts, attach them to the test report, append them to MSF_FUZZ_REPORT."""
        row = {"test": self.name, "cases": self.cases, **dict(sorted(self.outcomes.items()))}
        print(f"\nfuzz {self.name}: {json.dumps(row)}")
        record_property("fuzz_cases", self.cases)  # type: ignore[operator]
        record_property("fuzz_outcomes", json.dumps(dict(self.outcomes)))  # type: ignore[operator]
        target = os.environ.get("MSF_FUZZ_REPORT")
        if target:
            with open(target, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")


#: A mutated TIFF found by the slow fuzz run (its IFD chain is garbage): ``tifffile.imread``
#: enumerated pages for minutes (a denial of service); ``read_image`` must refuse it at once.
#: zlib-compressed, base64 (1586 bytes decoded).
HANGING_TIFF_B64 = (
    "eNpdkns4E2ocxzfqNHdqTGsx5Ja5bkMuuSYsbR1Jl7ktnKG5tFz2jGEcSatQiCNMpZtcWnMd5doc1x5zJJc1cqhUIiOGszr+"
    "6On3Pp/393me9/u+v39eN7f9ABAAAFAAAIDbAECxqYoBbjlYjARQklXsWgrCwe/69IVFsuXYEQJ+V6sQICk+bBUjCZT8Ef7O"
    "b1suIUYeKAGAiDtXjNLWg4riTXkr8/2+yk+DIFtesh0AgAK3//BPYvZsuVAM7KdZej+5qXiWrLhvAP4v0I9F1SQTAyKDNK3g"
    "Z8xMEHAzFAKO9EkA/FLAX7gQEhwcHHIuyCiSspXYoH+KytLquMRXZKRezH/j/RlpvtBjQvUNQgbch2/n+5GYhuQp0y7R4FKL"
    "8QOciPkef5RkQysp76JFt+jHxx2nvIGWxygrVNAmq8mqalR1ZRflokT4QTlwYc/kuFbZyIzE3VcjGy4S+CXWSi89c5VoIMoJ"
    "iqsZDLSntU/kSHbFv8PpyiKxsmzulJN/ExTNqPNjOHVnjgBOJj7jr9aG++vDLss3MUvCzTfbLf71UH9EtnvxkMMy1hjWuW60"
    "eCTRNjRwtDf4XKvOttMGH8GojAovF9n9NPyex4a9cZ99m8e/2WAsqiufa11fq1jQD7kSecsmRM2/3TpXpbDTU4vLOqZblU6S"
    "zt8e1m/pPvAKqjgVnq3n2GrjeAG0CS133S2bESF0z9JYjVqZVedZVfPKXCKYCa0OK4rT0BF+yMHMUjzW8RaX8UGAVZlbpCAM"
    "CgWZmHcESFC7Ys+Jx6mGsPFxOXQJT+PG7KDqgYEObZDsNFzaBptjf0ThKSqtRtpH01Z1/B2rNDayM2LiCNWVOBQxOoa5LP6T"
    "wPli9pQoFVvN4eC3ZT9t6sEHJvLnqHbf3JvCEu7MZemYaXgESKkn2bd9LpwnEM8Od1BMYhJ7kyDPQrhGWTfNXcw5g/X0ujJy"
    "EJCGlEpVDdOiV2r5FM5nmJvdsKNDCBOsV9NppZQC5nSBmSiPce5evU06FjH0V949jwVw3fgK2ksY47E5CiO/uFZ76y2uX5QG"
    "VzN08GybvTBxULvCJrb9WT1xLgtfnH7IB05ji0gTfofuQYgpycxhN/Rb8u4XQTvoQNfySU5acr2eQqHvP2YII6MIW+872S0k"
    "NDPqiRsONx1p6tAlxVU0nZF54/9qkICS0zgREbLxctQ7zKfn+ZB2SLM5etJAgfI1NdubSKoPZwoDVF6/7ZP0cMRqO2P46I5k"
    "VQWriYSkWlGXwHuIcpihW1MWPHURN9zpq8R+oHvqtARv8be1rxbseRIfWy56ONm348zY705oVF2OxdqupRQGJgPM9UBfJali"
    "uG3Vytn0m71PiOTGPCnMiv3G5sAsdQzUTdRAJtz+Uikdpf8VFgir8hccD94ZBmlAyeUY2zHAAy3nF47I7Pz7ib2JAHa/NbMB"
    "LZ/bodfGmgI5Sbutqy13er6mVotSBovo/evRS3/EJmVab6ivJV/2a6z1yh1PKLMj9N9ctu4togSUexrf0XJdNnULE87baUcX"
    "jB1Q87mssY/QknmdHfvI8s21CMRs/sEZBdDKRu9q6EzyejODMLm2x8RAn18xzwpvXlRj74vFRFcJeeefPozp3rEU7Xh4uSjM"
    "xdaRP4NCOCNOMiendfN5SaE1XL0MiDOu/2qfRW2P7JnDldJEWuJeD4GSZfX8vUKGpfBKgz0lVIsJAw9e4nmpp0Dz1hp3zuUf"
    "TVwAhROstu3NPu0gxcHFUThVSkUG9jnxlUg1PfDQtxvT3Vb76JxVy4TpktNezwUWrAFrOtRzsZgXKQ82OwQo1DlF2NPvpkmN"
    "VH7JM9R2xSqPyKSHzsy0+c9MVOGT7O+uXBW+JxwTcm+1JcefJAhkvK1EA+sGivJpLTTl4T+hxfN2UIymX5XodsOwJhKBylWU"
    "LH0LN4lOoRJgxlHO18GrNsyWj6F2oFPSNVlGZ9WZJEfJRsQu21M6H8aG9eeWLMges2VDkFFU397llwSEHIf1sABZwNF5yeoQ"
    "NeC5VlbOJ/ORX9yv/QcusZ//"
)


def hanging_tiff() -> bytes:
    """The bytes of :data:`HANGING_TIFF_B64`."""
    import base64
    import zlib

    return zlib.decompress(base64.b64decode(HANGING_TIFF_B64))
