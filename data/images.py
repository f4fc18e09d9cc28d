"""Image files as the datasets, detect.py and the checker read them: decoding to 3-channel BGR the way up a viewer
shows it (EXIF orientation, transparency on white), header sizes, and the photo extensions."""
import contextlib
import io
import os
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image

# Transparent pixels are composited on this background (BGR): what an image viewer shows, and what the
# annotator saw when drawing the boxes.
ALPHA_BACKGROUND = (255, 255, 255)


class DecodedImage(NamedTuple):
    image: np.ndarray  # uint8 HxWx3 BGR, the way up a viewer shows it
    had_alpha: bool  # transparent pixels were composited on ALPHA_BACKGROUND
    orientation: int  # the EXIF orientation applied (1: none)


# EXIF orientation -> the cv2 operations that turn the stored pixels the way up viewers show them
ORIENTATIONS = {2: lambda im: cv2.flip(im, 1), 3: lambda im: cv2.rotate(im, cv2.ROTATE_180),
                4: lambda im: cv2.flip(im, 0), 5: lambda im: cv2.transpose(im),
                6: lambda im: cv2.rotate(im, cv2.ROTATE_90_CLOCKWISE),
                7: lambda im: cv2.rotate(cv2.transpose(im), cv2.ROTATE_180),
                8: lambda im: cv2.rotate(im, cv2.ROTATE_90_COUNTERCLOCKWISE)}


def exif_orientation(data: np.ndarray) -> int:
    """The EXIF Orientation tag of an encoded image (uint8 bytes; 1 when it has none), read from its header."""
    head = data[:65536].tobytes()
    if not (b"Exif" in head or b"eXIf" in head or b"EXIF" in head or head[:4] in (b"II*\x00", b"MM\x00*")):
        return 1
    try:
        with Image.open(io.BytesIO(data.tobytes())) as image:
            orientation = image.getexif().get(0x0112, 1)
    except Exception:  # PIL raises many kinds on odd headers; cv2 decodes the pixels either way
        return 1
    return orientation if orientation in ORIENTATIONS else 1


def decode_image(path: str) -> DecodedImage:
    """JPEG/PNG/BMP/WebP/TIFF, grayscale, 16-bit, palette and CMYK come out as 3-channel BGR; transparent pixels are
    composited on ALPHA_BACKGROUND; the EXIF orientation is applied (every viewer and annotation tool shows the photo
    that way up, and its boxes are drawn on that view); a truncated JPEG decodes as far as it goes, as cv2.imread and
    PIL do. Raises ValueError naming the file when it is missing, empty or undecodable."""
    image, had_alpha, data = _decode_pixels(path)
    orientation = exif_orientation(data)
    if orientation != 1:
        image = np.ascontiguousarray(ORIENTATIONS[orientation](image))
    return DecodedImage(image, had_alpha, orientation)


def _decode_pixels(path: str) -> tuple:
    """-> (uint8 HxWx3 BGR as stored, had_alpha, the file's bytes)."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read image ({exc.strerror})") from None
    if data.size == 0:
        raise ValueError(f"{path}: empty image file")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None and os.path.isfile(path):  # imdecode refuses truncated JPEGs that imread decodes
        with native_stderr_silenced():  # libjpeg's own "Premature end of JPEG file": the checker says it in words
            image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: corrupt or unsupported image")
    if image.ndim == 3 and image.shape[2] == 4 and data[:2].tobytes() != b"\xff\xd8":  # alpha (not CMYK JPEG)
        scale = 65535.0 if image.dtype == np.uint16 else 255.0
        alpha = image[..., 3:].astype(np.float32) / scale
        colour = image[..., :3].astype(np.float32) * (255.0 / scale)
        background = np.array(ALPHA_BACKGROUND, np.float32)
        transparent = bool((alpha < 1).any())  # an RGBA file whose every pixel is opaque is not "transparent"
        return np.round(colour * alpha + background * (1 - alpha)).astype(np.uint8), transparent, data
    if image.ndim == 2 or image.dtype != np.uint8 or image.shape[2] != 3:  # gray, 16-bit, CMYK: as cv2 converts
        flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION  # applied once, in decode_image
        colour = cv2.imdecode(data, flags)
        image = colour if colour is not None else cv2.imread(path, flags)
        if image is None:
            raise ValueError(f"{path}: corrupt or unsupported image")
    return image, False, data


@contextlib.contextmanager
def native_stderr_silenced():
    """What C libraries write straight to file descriptor 2 (libjpeg's warnings) goes nowhere inside the block."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def jpeg_truncated(path: str) -> bool:
    """A JPEG file without its end-of-image marker (FF D9): cut short, decoded only as far as it goes."""
    with open(path, "rb") as f:
        if f.read(2) != b"\xff\xd8":
            return False
        size = os.path.getsize(path)
        tail = b""
        while size > 2:  # padding after the end marker (zeros, newlines: some cameras and tools write kilobytes)
            step = min(size - 2, 65536)
            f.seek(size - step)
            tail = f.read(step) + tail
            size -= step
            if len(tail.rstrip(b"\x00\r\n ")) >= 2:
                break
        return not tail.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")


def image_header_size(path: str) -> tuple:
    """(height, width) from the image file's header without decoding it; (0, 0) when it cannot be read."""
    try:
        with Image.open(path) as image:
            turned = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # decode_image turns these by 90 degrees
            return image.size if turned else image.size[::-1]  # PIL's size is (width, height)
    except Exception:  # PIL raises many kinds on odd headers
        return 0, 0


PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def image_files(folder: str) -> list:
    """The image files of `folder` (by extension, any case), sorted; [] when there are none."""
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if os.path.splitext(name)[1].lower() in PHOTO_EXTENSIONS)


def read_image(path: str) -> np.ndarray:
    """-> uint8 HxWx3 BGR, the way up a viewer shows it (see `decode_image`)."""
    return decode_image(path).image
