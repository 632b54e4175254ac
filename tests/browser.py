"""Headless Chromium for the page tests: Debian's ``chromium`` (``/usr/bin/chromium``)
driven by the ``playwright`` package (no browser is downloaded). Skipped when either is
missing, unless ``RAINLM_REQUIRE_ALL=1`` or ``RAINLM_REQUIRE_CHROMIUM=1``
(``tests/needs.py``)."""

from __future__ import annotations

import importlib.util
import shutil
import struct
import zlib

from tests.needs import require

__all__ = ["find_chromium", "png_size_and_colours"]


def find_chromium(modules: tuple[str, ...] = ()) -> str:
    """The chromium executable, after checking that it, playwright and ``modules`` are
    installed (a skip or, when required, a failure saying what to install)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    missing = [what for what, ok in (("chromium", path),
                                     ("playwright", importlib.util.find_spec("playwright")))
               if not ok]
    for module in modules:
        if importlib.util.find_spec(module) is None:
            missing.append(module)
    require(not missing, ", ".join(missing),
            "apt-get install chromium (.ci/run does it); make test installs the rest",
            part="chromium")
    return path


def png_size_and_colours(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the image data) of an 8-bit PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        length, = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))
