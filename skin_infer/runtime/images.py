"""Decoding photos safely: sniff the format, bound the pixel count, catch truncation, apply EXIF orientation.

Every format's dimensions are read from its header by Pillow (which parses headers lazily, without decoding
pixels) before OpenCV decodes anything, so a decompression bomb in any format is refused without allocating
it. OpenCV decodes a truncated JPEG without complaint (the missing part comes out grey), so JPEG files are
also walked marker by marker. Inputs must be regular files within a size cap: a FIFO, a device such as
``/dev/zero`` or a socket is refused before a byte is read (opened non-blocking, so a FIFO cannot hang).
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .errors import ImageError

DEFAULT_MAX_PIXELS = 64_000_000
DEFAULT_MAX_BYTES = 256 * 1024 * 1024  # no photo format needs more for 64 MP; /dev/zero would never end
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".webp", ".tif", ".tiff"}
# Image formats people have that OpenCV's wheels do not decode: reported, never silently skipped.
UNSUPPORTED_SUFFIXES = {
    ".gif",
    ".heic",
    ".heif",
    ".avif",
    ".jxl",
    ".svg",
    ".psd",
    ".cr2",
    ".nef",
    ".dng",
    ".raw",
}
SUPPORTED_TEXT = "JPEG, PNG, BMP, WebP or TIFF"

_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)


def sniff_format(data: bytes) -> str | None:
    """The image format from the file's first bytes (never from its name)."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"GIF8",):
        return "gif"
    if data[4:8] == b"ftyp":
        return "heif/avif"
    return None


def _jpeg_scan(data: bytes) -> None:
    """Walk a JPEG's markers; raise ImageError if the data ends before EOI."""
    pos, n = 2, len(data)
    while True:
        if pos + 2 > n:
            raise ImageError("truncated JPEG: the file ends before the image data is complete")
        if data[pos] != 0xFF:
            raise ImageError("corrupt JPEG: a marker was expected but not found")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # EOI
            return
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        if pos + 4 > n:
            raise ImageError("truncated JPEG: the file ends before the image data is complete")
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data never holds FF D9 (an FF byte is stuffed with 00)
            if data.rfind(b"\xff\xd9", pos) < 0:  # so an image cut short has no end-of-image marker after it
                raise ImageError("truncated JPEG: the file ends inside the image data")
            return


def check_header_size(data: bytes, max_pixels: int) -> tuple[int, int]:
    """(width, height) from the header, without decoding pixels; ImageError when it is above ``max_pixels`` or
    the header is unreadable."""
    try:
        with warnings.catch_warnings():  # Pillow's own bomb warning: our limit is checked below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Image.DecompressionBombError:  # Pillow refuses above twice its own limit before we can ask
        width = height = None
    except Exception as exc:  # Pillow raises many types for damaged headers
        raise ImageError(f"the image header cannot be read ({type(exc).__name__}); the file is damaged") from None
    if width is None or width * height > max_pixels:
        size = (
            f"{width}x{height} = {width * height:,} pixels" if width else f"over {2 * Image.MAX_IMAGE_PIXELS:,} pixels"
        )
        raise ImageError(
            f"{size} is above the limit of {max_pixels:,} (a guard against decompression bombs); downscale it or "
            "raise --max-pixels"
        )
    return width, height


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any decoded array (gray, 16-bit, float, alpha) as 8-bit, 3-channel BGR."""
    if image.dtype == np.uint16:
        image = (image / 257.0 + 0.5).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageError(f"unsupported pixel type {image.dtype}; save the image as 8- or 16-bit")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        # Composite on white: fully transparent pixels often carry arbitrary colours.
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        rgb = image[:, :, :3].astype(np.float32)
        return (rgb * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    if image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode bytes to an 8-bit BGR array with EXIF orientation applied; raise ImageError when it can't."""
    if not data:
        raise ImageError("empty file (0 bytes)")
    fmt = sniff_format(data)
    if fmt is None:
        looks_text = all(32 <= b < 127 or b in (9, 10, 13) for b in data[:256])
        what = "a text file" if looks_text else "not an image"
        raise ImageError(f"{what}, whatever its name says; give a {SUPPORTED_TEXT} file")
    if fmt in ("gif", "heif/avif"):
        raise ImageError(f"{fmt.upper()} images are not supported; convert it to {SUPPORTED_TEXT}")
    if fmt == "jpeg":
        _jpeg_scan(data)
    check_header_size(data, max_pixels)
    buf = np.frombuffer(data, dtype=np.uint8)
    # JPEG: ANYDEPTH|ANYCOLOR lets OpenCV apply the EXIF orientation (IMREAD_UNCHANGED would skip it).
    # Formats that carry alpha are read UNCHANGED so transparency can be composited instead of dropped.
    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR if fmt == "jpeg" else cv2.IMREAD_UNCHANGED
    image = cv2.imdecode(buf, flags)
    if image is None:
        raise ImageError(f"the {fmt.upper()} data could not be decoded (damaged or truncated file)")
    h, w = image.shape[:2]
    if h * w > max_pixels:
        raise ImageError(f"{w}x{h} pixels is above the limit of {max_pixels:,}; downscale it or raise --max-pixels")
    return to_bgr8(image)


def _special_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_file(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; ImageError (naming the file and the fix) otherwise."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file; check the path") from None
    except OSError as exc:
        raise ImageError(
            f"{path}: cannot be opened ({exc.strerror or exc}); check the path and its permissions"
        ) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ImageError(f"{path}: is a folder; pass it as a path to analyse the images inside")
        if not stat.S_ISREG(info.st_mode):
            raise ImageError(f"{path}: is {_special_kind(info.st_mode)}, not an image file; give a photo file")
        if info.st_size > max_bytes:
            raise ImageError(
                f"{path}: {info.st_size:,} bytes is above the limit of {max_bytes:,} for one image; "
                "recompress or downscale it"
            )
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(max_bytes + 1)  # the file may grow after fstat
        if len(data) > max_bytes:
            raise ImageError(f"{path}: grew beyond {max_bytes:,} bytes while being read; give a finished file")
        return data
    except OSError as exc:
        raise ImageError(f"{path}: cannot be read ({exc.strerror or exc}); check its permissions") from None
    finally:
        os.close(fd)


def decode_named(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode the bytes of the file ``name`` (a path or a URI); errors name it and the fix."""
    suffix = os.path.splitext(name)[1].lower()
    if suffix in UNSUPPORTED_SUFFIXES:
        raise ImageError(f"{name}: {suffix} files are not supported; convert it to {SUPPORTED_TEXT}")
    try:
        return decode_image(data, max_pixels=max_pixels)
    except ImageError as exc:
        raise ImageError(f"{name}: {exc}") from None


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read and decode one file; errors name the file and the fix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in UNSUPPORTED_SUFFIXES:  # before reading: a .heic is refused for its name, not its bytes
        raise ImageError(f"{path}: {suffix} files are not supported; convert it to {SUPPORTED_TEXT}")
    return decode_named(read_file(path), str(path), max_pixels)
