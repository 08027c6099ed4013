"""Decoding: awkward but valid photos are analysed; bad files are refused with a message naming them."""

import os

import cv2
import numpy as np
import pytest
from PIL import Image
from shared_data import FACES

from skin_infer.runtime import ImageError, read_image

PORTRAIT = FACES / "photos" / "fairface_White_aligned.jpg"


@pytest.fixture(scope="module")
def portrait():
    return cv2.imread(str(PORTRAIT))


def test_jpeg_dimensions_and_pixels_match_opencv(portrait):
    image = read_image(PORTRAIT)
    assert image.shape == portrait.shape and image.dtype == np.uint8
    assert np.array_equal(image, portrait)


def test_grayscale_becomes_three_channels(tmp_path, portrait):
    path = tmp_path / "gray.png"
    cv2.imwrite(str(path), cv2.cvtColor(portrait, cv2.COLOR_BGR2GRAY))
    image = read_image(path)
    assert image.shape == (*portrait.shape[:2], 3)
    assert np.array_equal(image[:, :, 0], image[:, :, 2])


def test_16bit_png_keeps_its_values_scaled_to_8bit(tmp_path, portrait):
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), portrait.astype(np.uint16) * 257)
    assert np.array_equal(read_image(path), portrait)


def test_rgba_is_composited_on_white(tmp_path, portrait):
    rgba = cv2.cvtColor(portrait, cv2.COLOR_BGR2BGRA)
    rgba[:50, :, 3] = 0  # transparent band over arbitrary colours
    path = tmp_path / "alpha.png"
    cv2.imwrite(str(path), rgba)
    image = read_image(path)
    assert image.shape == portrait.shape
    assert (image[:50] == 255).all() and np.array_equal(image[60:], portrait[60:])


def test_cmyk_jpeg_is_converted_to_colour(tmp_path, portrait):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(portrait[:, :, ::-1]).convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    image = read_image(path)
    assert image.shape == portrait.shape
    assert np.abs(image.astype(int) - portrait.astype(int)).mean() < 12


def test_exif_orientation_is_applied(tmp_path, portrait):
    # Store the photo rotated on disk with orientation 6 ("rotate 90° clockwise to view"): decoding must undo it.
    stored = Image.fromarray(cv2.rotate(portrait, cv2.ROTATE_90_COUNTERCLOCKWISE)[:, :, ::-1])
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif, quality=95)
    image = read_image(path)
    assert image.shape == portrait.shape
    assert np.abs(image.astype(int) - portrait.astype(int)).mean() < 6


@pytest.mark.parametrize("suffix", [".bmp", ".webp", ".tif", ".tiff", ".png"])
def test_other_formats_decode(tmp_path, portrait, suffix):
    path = tmp_path / f"photo{suffix}"
    cv2.imwrite(str(path), portrait, [cv2.IMWRITE_WEBP_QUALITY, 101] if suffix == ".webp" else [])
    assert np.abs(read_image(path).astype(int) - portrait.astype(int)).mean() < 1


def test_non_ascii_file_name(tmp_path, portrait):
    path = tmp_path / "フォト_été_ß.jpg"
    path.write_bytes(PORTRAIT.read_bytes())
    assert read_image(path).shape == portrait.shape


def test_tiny_image_is_decoded(tmp_path):
    path = tmp_path / "tiny.png"
    cv2.imwrite(str(path), np.full((10, 10, 3), 128, np.uint8))
    assert read_image(path).shape == (10, 10, 3)


def _refused(path, *words):
    with pytest.raises(ImageError) as info:
        read_image(path, max_pixels=1_000_000)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message
    return message


def test_zero_byte_file_is_refused(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    _refused(path, "empty")


@pytest.mark.parametrize("keep", [0.3, 0.7, 0.98])
def test_truncated_jpeg_is_refused(tmp_path, keep):
    data = PORTRAIT.read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * keep)])
    # OpenCV itself decodes it into a partly grey picture without a word: the refusal is ours.
    assert cv2.imread(str(path)) is not None
    _refused(path, "truncated")


def test_jpeg_with_data_after_the_end_marker_is_accepted(tmp_path, portrait):
    path = tmp_path / "trailer.jpg"
    path.write_bytes(PORTRAIT.read_bytes() + b"\x00" * 100 + b"appended by a camera app")
    assert read_image(path).shape == portrait.shape


def test_truncated_png_is_refused(tmp_path):
    path = tmp_path / "cut.png"
    cv2.imwrite(str(path), cv2.imread(str(PORTRAIT)))
    path.write_bytes(path.read_bytes()[:5000])
    _refused(path, "could not be decoded")


def test_text_file_named_jpg_is_refused(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are my notes, not a photo\n")
    _refused(path, "text file")


def test_unsupported_formats_are_refused(tmp_path):
    gif = tmp_path / "anim.gif"
    Image.new("RGB", (20, 20), "red").save(gif)
    _refused(gif, "not supported", "convert")
    heic = tmp_path / "phone.jpg"  # content decides, not the name
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(100))
    _refused(heic, "HEIF", "not supported")


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    cv2.imwrite(str(path), np.zeros((2000, 2000), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert path.stat().st_size < 100_000
    _refused(path, "4,000,000 pixels", "--max-pixels")


def test_unreadable_paths_are_refused(tmp_path):
    _refused(tmp_path / "missing.jpg", "no such file")
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    _refused(folder, "folder")
    if os.geteuid() != 0:  # root reads anything; the permission path is then covered by the folder case
        locked = tmp_path / "locked.jpg"
        locked.write_bytes(PORTRAIT.read_bytes())
        locked.chmod(0)
        _refused(locked, "permissions")
