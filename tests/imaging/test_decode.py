"""Decoding uploads: formats, bit depth, windows, spacing, limits and every bad input."""

from __future__ import annotations

import subprocess
import sys
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile
from pydicom.uid import JPEG2000Lossless, RLELossless

from annotator.imaging import DecodedImage, ImageRejected, decode_image, encode_png, pixel_sha256
from tests.imaging import samples

LIMIT = 10_000_000
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")


def decode(data: bytes, filename: str = "upload", max_pixels: int = LIMIT) -> DecodedImage:
    return decode_image(data, filename, max_pixels=max_pixels)


def rejected(data: bytes, filename: str, max_pixels: int = LIMIT) -> str:
    with pytest.raises(ImageRejected) as caught:
        decode(data, filename, max_pixels)
    message = str(caught.value)
    assert message.startswith(filename)
    return message


# --- PNG and JPEG -----------------------------------------------------------------------


def test_8bit_png_decodes_exactly():
    image = decode(samples.png_bytes(8, size=(64, 48)), "hand.png")
    assert (image.width, image.height) == (64, 48)
    assert image.pixels.dtype == np.uint8
    np.testing.assert_array_equal(image.pixels, samples.gradient((64, 48), 8))
    assert (image.bit_depth, image.photometric, image.source_format) == (8, "MONOCHROME2", "png")
    assert image.pixel_spacing is None and image.deidentified_dicom is None


def test_16bit_png_keeps_the_full_range():
    image = decode(samples.png_bytes(16), "wrist.png")
    assert image.pixels.dtype == np.uint16 and image.bit_depth == 16
    assert image.pixels.max() == 65535
    np.testing.assert_array_equal(image.pixels, samples.gradient(bit_depth=16))


def test_jpeg_decodes_to_8bit_grayscale():
    image = decode(samples.jpeg_bytes(), "elbow.jpg")
    assert image.source_format == "jpeg" and image.pixels.dtype == np.uint8
    difference = image.pixels.astype(int) - samples.gradient().astype(int)
    assert np.abs(difference).max() <= 8  # lossy, but the same picture


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "P"])
def test_colour_png_is_converted_to_grayscale(mode):
    image = decode(samples.rgb_png_bytes(mode=mode), f"export-{mode}.png")
    assert image.pixels.dtype == np.uint8 and image.pixels.ndim == 2
    np.testing.assert_array_equal(image.pixels, samples.gradient())


def test_rgb_jpeg_is_converted_to_grayscale():
    image = decode(samples.jpeg_bytes(mode="RGB"), "export.jpg")
    assert image.pixels.shape == (48, 64) and image.pixels.dtype == np.uint8


def test_unsupported_mode_is_rejected():
    assert "unsupported image mode CMYK" in rejected(samples.jpeg_bytes(mode="CMYK"), "c.jpg")


def test_format_comes_from_content_not_extension():
    assert decode(samples.png_bytes(), "mislabelled.jpg").source_format == "png"


def test_truncated_png_is_rejected():
    message = rejected(samples.truncated(samples.png_bytes(size=(256, 256))), "cut.png")
    assert "damaged PNG" in message


def test_corrupt_png_is_rejected():
    message = rejected(samples.corrupted(samples.png_bytes(size=(256, 256))), "bad.png")
    assert "damaged PNG" in message


def test_png_with_short_image_data_is_rejected():
    message = rejected(samples.png_with_short_image_data(), "short.png")
    assert "not a readable PNG image" in message


def test_truncated_jpeg_is_rejected():
    message = rejected(samples.truncated(samples.jpeg_bytes(size=(256, 256))), "cut.jpg")
    assert "not a readable JPEG image" in message


# --- EXIF orientation -------------------------------------------------------------------

# What each EXIF orientation asks a viewer to do to the stored pixels, in numpy terms.
UPRIGHT = {
    3: lambda stored: np.rot90(stored, 2),  # turn 180°
    6: lambda stored: np.rot90(stored, -1),  # turn 90° clockwise
    8: lambda stored: np.rot90(stored, 1),  # turn 90° counter-clockwise
}


@pytest.mark.parametrize("orientation", sorted(UPRIGHT))
def test_jpeg_exif_orientation_is_applied(orientation):
    image = decode(samples.jpeg_bytes(orientation=orientation), f"o{orientation}.jpg")
    expected = UPRIGHT[orientation](samples.gradient())
    assert image.pixels.shape == expected.shape
    difference = image.pixels.astype(int) - expected.astype(int)
    assert np.abs(difference).max() <= 8  # lossy, but the same picture the same way up
    assert image.exif_orientation == orientation


@pytest.mark.parametrize("orientation", sorted(UPRIGHT))
def test_16bit_png_exif_orientation_is_applied_exactly(orientation):
    image = decode(samples.png_bytes(16, orientation=orientation), f"o{orientation}.png")
    expected = UPRIGHT[orientation](samples.gradient(bit_depth=16))
    np.testing.assert_array_equal(image.pixels, expected)
    assert image.sha256 == pixel_sha256(expected)
    assert image.exif_orientation == orientation


@pytest.mark.parametrize("orientation", [None, 1])
def test_upright_image_reports_no_orientation(orientation):
    image = decode(samples.jpeg_bytes(orientation=orientation), "upright.jpg")
    assert image.exif_orientation is None and image.pixels.shape == (48, 64)


def test_orientation_changes_the_hash():
    upright = decode(samples.png_bytes(), "a.png")
    turned = decode(samples.png_bytes(orientation=3), "b.png")
    assert turned.sha256 != upright.sha256


# --- Damaged JPEGs ----------------------------------------------------------------------


def test_truncated_jpeg_decodes_when_damage_is_allowed():
    intact = samples.jpeg_bytes(size=(256, 256))
    image = decode_image(samples.truncated(intact), "cut.jpg", max_pixels=LIMIT, allow_damaged=True)
    assert image.damaged is not None
    assert image.damaged.startswith("cut.jpg is a damaged JPEG (image file is truncated")
    assert image.damaged.endswith("decoded as far as its data goes")
    assert image.pixels.shape == (256, 256)
    # the part before the cut is the picture; the rest is not
    whole = decode(intact, "whole.jpg").pixels
    np.testing.assert_array_equal(image.pixels[:64], whole[:64])
    assert not np.array_equal(image.pixels[-64:], whole[-64:])


@pytest.mark.parametrize("keep", [0.3, 0.9, 0.999])
def test_damaged_decoding_matches_pillows_load_truncated_images(keep, monkeypatch):
    data = samples.truncated(samples.jpeg_bytes(size=(256, 256)), keep=keep)
    image = decode_image(data, "cut.jpg", max_pixels=LIMIT, allow_damaged=True)
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with Image.open(BytesIO(data)) as reference:
        np.testing.assert_array_equal(image.pixels, np.asarray(reference.convert("L")))


def test_damaged_decoding_leaves_pillow_strict():
    data = samples.truncated(samples.jpeg_bytes(size=(256, 256)))
    decode_image(data, "cut.jpg", max_pixels=LIMIT, allow_damaged=True)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert "not a readable JPEG image" in rejected(data, "cut.jpg")


def test_intact_jpeg_is_not_marked_damaged():
    image = decode_image(samples.jpeg_bytes(), "ok.jpg", max_pixels=LIMIT, allow_damaged=True)
    assert image.damaged is None and image.warnings == ()


def test_jpeg_cut_inside_its_header_is_rejected_even_when_damage_is_allowed():
    data = samples.jpeg_bytes()[:200]
    with pytest.raises(ImageRejected, match=r"^head\.jpg is not a readable JPEG image"):
        decode_image(data, "head.jpg", max_pixels=LIMIT, allow_damaged=True)


def test_truncated_png_is_rejected_even_when_damage_is_allowed():
    data = samples.truncated(samples.png_bytes(size=(256, 256)))
    with pytest.raises(ImageRejected, match=r"^cut\.png is a damaged PNG"):
        decode_image(data, "cut.png", max_pixels=LIMIT, allow_damaged=True)


def test_unknown_format_is_rejected():
    assert "not a PNG, JPEG or DICOM file" in rejected(b"patient list\n" * 20, "notes.txt")


def test_empty_file_is_rejected():
    assert "is empty" in rejected(b"", "empty.png")


def test_png_over_the_pixel_limit_is_rejected_before_decoding(monkeypatch):
    bomb = samples.solid_bilevel_png_bytes(20_000, 20_000)
    assert len(bomb) < 100_000

    def no_decoding(*args, **kwargs):
        raise AssertionError("the image was opened for decoding")

    monkeypatch.setattr(Image, "open", no_decoding)
    message = rejected(bomb, "bomb.png", max_pixels=50_000_000)
    assert "has 20000×20000 = 400000000 pixels, over the limit of 50000000" in message


def test_jpeg_over_the_pixel_limit_is_rejected():
    message = rejected(samples.jpeg_bytes(size=(64, 48)), "big.jpg", max_pixels=3000)
    assert "64×48 = 3072 pixels, over the limit of 3000" in message


def test_solid_bilevel_png_within_the_limit_decodes():
    image = decode(samples.solid_bilevel_png_bytes(100, 50), "solid.png")
    assert image.pixels.shape == (50, 100) and not image.pixels.any()


# --- DICOM ------------------------------------------------------------------------------


def test_12bit_monochrome1_dicom_keeps_stored_values():
    image = decode(samples.dicom_bytes(photometric="MONOCHROME1"), "chest.dcm")
    assert image.source_format == "dicom" and image.photometric == "MONOCHROME1"
    assert image.pixels.dtype == np.uint16 and image.bit_depth == 12
    assert image.pixels.max() == 4095  # not inverted, not rescaled
    np.testing.assert_array_equal(image.pixels, samples.dicom_pixels())


def test_dicom_is_detected_by_content_whatever_its_name():
    image = decode(samples.dicom_bytes(photometric="MONOCHROME2"), "IMG0001")
    assert image.source_format == "dicom" and image.photometric == "MONOCHROME2"


def test_dicom_window_comes_from_the_header():
    image = decode(samples.dicom_bytes(window=(1000.0, 500.0)), "w.dcm")
    assert (image.window_center, image.window_width) == (1000.0, 500.0)


def test_dicom_window_is_mapped_to_stored_units_when_rescaled():
    ds = samples.dicom_dataset(window=(1000.0, 500.0))
    ds.RescaleSlope, ds.RescaleIntercept = 2, -1000
    image = decode(samples.dicom_file_bytes(ds), "rescaled.dcm")
    np.testing.assert_array_equal(image.pixels, samples.dicom_pixels())
    assert (image.window_center, image.window_width) == (1000.0, 250.0)


@pytest.mark.parametrize("window", [None, (float("nan"), 400.0), (100.0, 0.0)])
def test_missing_or_unusable_dicom_window_falls_back_to_percentiles(window):
    image = decode(samples.dicom_bytes(window=window), "nowindow.dcm")
    low, high = np.percentile(samples.dicom_pixels(), [0.5, 99.5])
    assert image.window_center == pytest.approx((low + high) / 2)
    assert image.window_width == pytest.approx(high - low)


def test_signed_dicom_is_shifted_to_unsigned():
    signed = samples.dicom_pixels().astype(np.int16) - 2048
    ds = samples.dicom_dataset(pixels=signed, pixel_representation=1, window=(0.0, 400.0))
    image = decode(samples.dicom_file_bytes(ds), "signed.dcm")
    assert image.pixels.dtype == np.uint16
    np.testing.assert_array_equal(image.pixels, samples.dicom_pixels())
    assert (image.window_center, image.window_width) == (2048.0, 400.0)


def test_pixel_spacing_is_kept():
    assert decode(samples.dicom_bytes(pixel_spacing=(0.15, 0.125)), "s.dcm").pixel_spacing == (
        0.15,
        0.125,
    )


def test_imager_pixel_spacing_is_the_fallback():
    data = samples.dicom_bytes(pixel_spacing=(0.2, 0.2), spacing_keyword="ImagerPixelSpacing")
    assert decode(data, "imager.dcm").pixel_spacing == (0.2, 0.2)


def test_no_pixel_spacing_is_none():
    assert decode(samples.dicom_bytes(pixel_spacing=None), "nospacing.dcm").pixel_spacing is None


def spacing_warning(filename: str, keyword: str, problem: str) -> str:
    return f"{filename} {keyword} {problem}: ignored, taken as unknown"


def test_usable_spacing_gives_no_warning():
    assert decode(samples.dicom_bytes(pixel_spacing=(0.1, 0.1)), "s.dcm").warnings == ()


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("0.0\\0.0", "is not positive (0.0, 0.0)"),  # what real CR devices write for unknown
        ("0\\0.1", "is not positive (0.0, 0.1)"),
        ("-0.1\\0.1", "is not positive (-0.1, 0.1)"),
        ("nan\\0.1", "is not finite (nan, 0.1)"),
        ("0.1\\inf", "is not finite (0.1, inf)"),
        ("-inf\\-inf", "is not finite (-inf, -inf)"),
        ("0.1", "has 1 values, expected 2"),
    ],
)
def test_unusable_pixel_spacing_is_unknown_with_a_warning(raw, problem):
    image = decode(samples.dicom_bytes(pixel_spacing=raw), "cr.dcm")
    assert image.pixel_spacing is None
    assert image.warnings == (spacing_warning("cr.dcm", "PixelSpacing", problem),)
    np.testing.assert_array_equal(image.pixels, samples.dicom_pixels())


def test_non_numeric_pixel_spacing_is_unknown_with_a_warning():
    # pydicom will not write a non-numeric DS, so the bytes are changed in the file
    data = samples.dicom_bytes(pixel_spacing="9.9\\0.1").replace(b"9.9\\0.1", b"abc\\0.1")
    image = decode(data, "text.dcm")
    assert image.pixel_spacing is None
    (warning,) = image.warnings
    assert warning.startswith("text.dcm PixelSpacing is not a number (")
    assert warning.endswith("): ignored, taken as unknown")


def test_unusable_imager_pixel_spacing_is_unknown_with_a_warning():
    data = samples.dicom_bytes(pixel_spacing="nan\\nan", spacing_keyword="ImagerPixelSpacing")
    image = decode(data, "nan.dcm")
    assert image.pixel_spacing is None
    assert image.warnings == (
        spacing_warning("nan.dcm", "ImagerPixelSpacing", "is not finite (nan, nan)"),
    )


def test_imager_pixel_spacing_replaces_an_unusable_pixel_spacing():
    ds = samples.dicom_dataset(pixel_spacing="0.0\\0.0")
    ds.add_new("ImagerPixelSpacing", "DS", "0.143\\0.143")
    image = decode(samples.dicom_file_bytes(ds), "both.dcm")
    assert image.pixel_spacing == (0.143, 0.143)
    assert image.warnings == (
        spacing_warning("both.dcm", "PixelSpacing", "is not positive (0.0, 0.0)"),
    )


def test_non_dicom_named_dcm_is_rejected():
    message = rejected(samples.png_bytes(), "x.dcm")
    assert message.startswith("x.dcm is not a DICOM file: ")


def test_dicom_without_pixel_data_is_rejected():
    ds = samples.dicom_dataset()
    del ds.PixelData
    assert (
        rejected(samples.dicom_file_bytes(ds), "nopixels.dcm") == "nopixels.dcm has no pixel data"
    )


def test_dicom_pixel_data_length_must_match_the_image_size():
    ds = samples.dicom_dataset()
    ds.PixelData = ds.PixelData[:-64]
    message = rejected(samples.dicom_file_bytes(ds), "short.dcm")
    assert "pixel data is 6080 bytes, expected 6144 for 48×64 at 16 bits" in message


def test_truncated_dicom_is_rejected():
    message = rejected(samples.truncated(samples.dicom_bytes(), keep=0.8), "cut.dcm")
    assert "pixel data is" in message


def test_dicom_with_a_malformed_element_is_rejected():
    message = rejected(samples.dicom_with_malformed_rows_bytes(), "malformed.dcm")
    assert "is a damaged DICOM file" in message


def test_dicom_over_the_pixel_limit_is_rejected_before_decoding():
    message = rejected(samples.dicom_bytes(), "big.dcm", max_pixels=1000)
    assert "64×48 = 3072 pixels, over the limit of 1000" in message


def test_multiframe_dicom_is_rejected():
    ds = samples.dicom_dataset()
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    assert "has 2 frames" in rejected(samples.dicom_file_bytes(ds), "cine.dcm")


def test_colour_dicom_is_rejected():
    ds = samples.dicom_dataset()
    ds.PhotometricInterpretation = "RGB"
    assert "only grayscale" in rejected(samples.dicom_file_bytes(ds), "colour.dcm")


@pytest.mark.parametrize("transfer_syntax", [RLELossless, JPEG2000Lossless], ids=["rle", "j2k"])
def test_compressed_dicom_decodes_to_the_same_pixels(transfer_syntax):
    if transfer_syntax == JPEG2000Lossless:
        pytest.importorskip("openjpeg", reason="JPEG 2000 encoding needs pylibjpeg-openjpeg")
    plain = decode(samples.dicom_bytes(), "plain.dcm")
    compressed = decode(samples.dicom_bytes(transfer_syntax), "compressed.dcm")
    np.testing.assert_array_equal(compressed.pixels, plain.pixels)
    assert compressed.sha256 == plain.sha256 and compressed.bit_depth == 12


def test_undecodable_compressed_pixel_data_is_rejected():
    ds = samples.dicom_dataset()
    ds.compress(RLELossless)
    ds.PixelData = ds.PixelData[:40]
    assert "pixel data cannot be decoded" in rejected(samples.dicom_file_bytes(ds), "rle.dcm")


# --- Shared behaviour -------------------------------------------------------------------


def test_default_window_spans_the_percentiles():
    image = decode(samples.png_bytes(16), "p.png")
    low, high = np.percentile(samples.gradient(bit_depth=16), [0.5, 99.5])
    assert image.window_center == pytest.approx((low + high) / 2)
    assert image.window_width == pytest.approx(high - low)


def test_same_picture_gives_the_same_hash_whatever_the_format():
    pixels = samples.dicom_pixels(bits_stored=16)
    from_png = decode(encode_png(pixels), "a.png")
    from_dicom = decode(samples.dicom_bytes(pixels=pixels, bits_stored=16), "a.dcm")
    assert from_png.sha256 == from_dicom.sha256 == pixel_sha256(pixels)


def test_hash_changes_with_pixels_dtype_and_shape():
    pixels = samples.gradient()
    changed = pixels.copy()
    changed[0, 0] += 1
    hashes = {
        pixel_sha256(pixels),
        pixel_sha256(changed),
        pixel_sha256(pixels.astype(np.uint16)),
        pixel_sha256(pixels.reshape(64, 48)),
    }
    assert len(hashes) == 4


def test_decoded_pixels_are_read_only():
    image = decode(samples.png_bytes(), "ro.png")
    with pytest.raises(ValueError):
        image.pixels[0, 0] = 1


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_encode_png_round_trips_exactly(bit_depth):
    pixels = samples.gradient((37, 23), bit_depth)
    image = decode(encode_png(pixels), "canonical.png")
    assert image.pixels.dtype == pixels.dtype
    np.testing.assert_array_equal(image.pixels, pixels)


def test_encode_png_accepts_big_endian_uint16():
    pixels = samples.gradient(bit_depth=16).astype(">u2")
    np.testing.assert_array_equal(decode(encode_png(pixels), "be.png").pixels, pixels)


@pytest.mark.parametrize(
    "pixels",
    [np.zeros((4, 4), np.float32), np.zeros((4, 4), np.int16), np.zeros((4, 4, 3), np.uint8)],
    ids=["float", "signed", "3-D"],
)
def test_encode_png_refuses_other_arrays(pixels):
    with pytest.raises(ValueError, match="expected 2-D uint8 or uint16"):
        encode_png(pixels)


def test_module_imports_without_django_or_torch():
    code = (
        "import sys, annotator.imaging; "
        "assert not {'django', 'torch'} & set(sys.modules), 'django or torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
