"""Photos with an EXIF orientation are turned the way up viewers and annotation tools show them, colour and greyscale
alike, in decoding, in header sizes, in training's reading of VOC boxes and in the checker's count."""
import cv2
import numpy as np
import pytest
from helpers import make_voc_folder
from PIL import Image, ImageOps

from data import VOCSource, decode_image, image_header_size
from scripts.check_data import check


def photo(size=(90, 60)):
    """A colour picture (w, h) with distinct corners, so any wrong turn or flip shows."""
    w, h = size
    image = np.full((h, w, 3), 128, np.uint8)
    image[: h // 3, : w // 3] = (255, 0, 0)  # RGB red top-left
    image[: h // 3, -w // 4:] = (0, 255, 0)  # green top-right
    image[-h // 4:, : w // 5] = (0, 0, 255)  # blue bottom-left
    return image


def save_with_orientation(path, rgb, orientation, mode="RGB"):
    image = Image.fromarray(rgb).convert(mode)
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, exif=exif.tobytes(), quality=95)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_every_orientation_decodes_as_pil_shows_it(tmp_path, orientation, mode):
    path = str(tmp_path / "p.jpg")
    save_with_orientation(path, photo(), orientation, mode)
    decoded = decode_image(path)
    with Image.open(path) as image:
        expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))[..., ::-1]
    assert decoded.orientation == orientation and decoded.image.shape == expected.shape
    assert np.abs(decoded.image.astype(int) - expected.astype(int)).mean() < 3  # two JPEG decoders
    assert image_header_size(path) == expected.shape[:2]


def test_boxes_drawn_on_the_turned_view_stay_where_they_were_drawn(tmp_path):
    """A phone photo stored 90x60 with Orientation=6 is shown (and annotated) 60x90: a box in its lower half lies
    outside the stored frame and used to be clipped."""
    folder = tmp_path / "voc"
    make_voc_folder(folder, {"a": ([("cell", 10, 50, 50, 85)], 60, 90)})
    save_with_orientation(str(folder / "JPEGImages" / "a.jpg"), photo(), 6)
    source = VOCSource(str(folder), ["trainval"], ["cell"])
    image, boxes, labels, _ = source.load(0)
    assert image.shape[:2] == (90, 60)
    np.testing.assert_allclose(boxes, [[9, 49, 50, 85]])
    lines, problems, _ = check(source)
    assert problems == 0 and not [n for n in lines if "clipped" in n]
    assert "photos with an EXIF orientation: 1 (turned the way up viewers and annotation tools show them, for " \
           "training, evaluation and detect.py alike)" in lines


def test_a_photo_without_exif_is_untouched(tmp_path):
    path = str(tmp_path / "plain.jpg")
    cv2.imwrite(path, photo()[..., ::-1].copy())
    decoded = decode_image(path)
    assert decoded.orientation == 1 and decoded.image.shape == (60, 90, 3)
