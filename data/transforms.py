"""The SSD augmentation of the paper (sections 2.2 and 3.6), on uint8 images, fast.

Geometry (zoom-out/expand, random crop, flip, resize) is composed into one patch of the original image in whole
pixels (it may reach outside the image, where the mean fills in), which a single `cv2.resize` brings to S x S;
no expanded canvas is ever built. Photometric distortions then work on the small output through lookup tables
and OpenCV's HSV conversion. Output: uint8 S x S x 3 BGR and boxes normalised to [0, 1]; normalisation for the
backbone is the model's first step (on the GPU).

Note on order: Caffe SSD distorts colours before expanding, so its mean-filled border is never distorted; here
photometric distortion runs after the resize (4x fewer pixels at VOC sizes), so the border is distorted too. The
object pixels see the same distribution of distortions either way.
"""
import cv2
import numpy as np

# Caffe SSD's batch samplers: min IoU of the patch with some object; None = any patch.
CROP_MIN_IOUS = (None, 0.1, 0.3, 0.5, 0.7, 0.9)


def iou_patches_boxes(patches: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """[M, 4] x [n, 4] -> [M, n] IoU."""
    lt = np.maximum(patches[:, None, :2], boxes[None, :, :2])
    rb = np.minimum(patches[:, None, 2:], boxes[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_p = (patches[:, 2:] - patches[:, :2]).prod(-1)[:, None]
    area_b = (boxes[:, 2:] - boxes[:, :2]).prod(-1)[None]
    return inter / (area_p + area_b - inter)


def sample_crop(rng, width: float, height: float, boxes: np.ndarray, trials: int = 50,
                min_scale: float = 0.3, aspect_range=(0.5, 2.0)):
    """Pick a patch (x1, y1, x2, y2) of a width x height canvas as Caffe SSD's batch sampler does: for the
    whole image and for each min IoU in CROP_MIN_IOUS, draw `trials` patches (scale in [min_scale, 1], aspect in
    aspect_range) and keep the first that overlaps some object by >= min IoU and holds an object centre; then
    choose uniformly among the samplers that found one. All trials are drawn and tested at once."""
    count = len(CROP_MIN_IOUS) * trials
    scale = rng.uniform(min_scale, 1.0, count)
    aspect = np.exp(rng.uniform(np.log(aspect_range[0]), np.log(aspect_range[1]), count))
    w, h = scale * np.sqrt(aspect), scale / np.sqrt(aspect)
    fits = (w <= 1) & (h <= 1)
    w, h = np.minimum(w, 1) * width, np.minimum(h, 1) * height
    x1, y1 = rng.uniform(0, 1, count) * (width - w), rng.uniform(0, 1, count) * (height - h)
    patches = np.stack([x1, y1, x1 + w, y1 + h], 1)
    ok = fits
    if len(boxes):
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        inside = ((centres[None, :, 0] > patches[:, None, 0]) & (centres[None, :, 0] < patches[:, None, 2]) &
                  (centres[None, :, 1] > patches[:, None, 1]) & (centres[None, :, 1] < patches[:, None, 3]))
        best_iou = iou_patches_boxes(patches, boxes).max(1)
        thresholds = np.repeat([-1.0 if t is None else t for t in CROP_MIN_IOUS], trials)
        ok = ok & inside.any(1) & (best_iou >= thresholds)
    ok = ok.reshape(len(CROP_MIN_IOUS), trials)
    choices = [np.array([0, 0, width, height])]  # the whole image is always a candidate
    for sampler in range(len(CROP_MIN_IOUS)):
        hits = np.flatnonzero(ok[sampler])
        if len(hits):
            choices.append(patches[sampler * trials + hits[0]])
    return choices[rng.integers(len(choices))]


def swap_channels(image: np.ndarray, order) -> np.ndarray:
    """image[..., order] through cv2.mixChannels (8x faster than numpy's fancy indexing here)."""
    out = np.empty_like(image)
    cv2.mixChannels([image], [out], [v for dst, src in enumerate(order) for v in (int(src), dst)])
    return out


# Photometric distortion presets: (hue delta in degrees, probability of a random channel swap).
# Caffe SSD (ssd_pascal.py: hue_delta 18 on OpenCV's 8-bit hue, 2 degrees a step; random_order_prob 0) and
# ssd.pytorch (hue +-18 on a 0..360 float hue; RandomLightingNoise swaps channels half the time).
PHOTOMETRIC = {"caffe": (36.0, 0.0), "ssd.pytorch": (18.0, 0.5)}


def photometric_distort(image: np.ndarray, rng, preset: str = "caffe") -> np.ndarray:
    """Brightness (+-32), contrast (x0.5..1.5), saturation (x0.5..1.5), hue (+-36 degrees for 'caffe', +-18 for
    'ssd.pytorch'), each with p = 0.5, contrast before or after the HSV part at random; 'ssd.pytorch' then swaps
    the channels in a random order with p = 0.5. uint8 in, uint8 out."""
    hue_delta, swap_prob = PHOTOMETRIC[preset]
    levels = np.arange(256, dtype=np.float32)
    delta = rng.uniform(-32, 32) if rng.random() < 0.5 else 0.0
    alpha = rng.uniform(0.5, 1.5) if rng.random() < 0.5 else 1.0
    contrast_first = rng.random() < 0.5
    saturation = rng.uniform(0.5, 1.5) if rng.random() < 0.5 else 1.0
    hue = rng.uniform(-hue_delta, hue_delta) if rng.random() < 0.5 else 0.0
    swap = rng.permutation(3) if rng.random() < swap_prob else None

    first = levels + delta
    if contrast_first:
        first = first * alpha
    if delta or (contrast_first and alpha != 1.0):
        image = cv2.LUT(image, np.clip(first, 0, 255).astype(np.uint8))
    if saturation != 1.0 or hue:
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)  # uint8 H in 0..179 (2 degrees per step)
        table = np.stack([np.mod(levels + hue / 2, 180), np.clip(levels * saturation, 0, 255), levels], -1)
        hsv = cv2.LUT(hsv, np.round(table).astype(np.uint8).reshape(256, 1, 3))
        image = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    if not contrast_first and alpha != 1.0:
        image = cv2.LUT(image, np.clip(levels * alpha, 0, 255).astype(np.uint8))
    if swap is not None:
        image = swap_channels(image, swap)
    return image


class SSDAugmentation:
    """Training transform: (image uint8 HxWx3, boxes [n, 4] pixels, labels [n], rng) ->
    (image uint8 SxSx3, boxes [m, 4] in [0, 1], labels [m])."""

    def __init__(self, size: int, mean_bgr=(104, 117, 123), expand_max_ratio: float = 4.0,
                 photometric: str = "caffe"):
        """`photometric`: a PHOTOMETRIC preset, or None for none."""
        if photometric not in (None, *PHOTOMETRIC):
            raise ValueError(f"photometric must be one of {list(PHOTOMETRIC)} or None, got {photometric!r}")
        self.size = size
        self.mean_bgr = tuple(float(m) for m in mean_bgr)
        self.expand_max_ratio = expand_max_ratio
        self.photometric = photometric

    def _crop_resize(self, image, x1: int, y1: int, pw: int, ph: int) -> np.ndarray:
        """The patch (x1, y1, x1 + pw, y1 + ph) of `image` (it may reach outside: mean there) resized to S x S."""
        height, width = image.shape[:2]
        size = self.size
        cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x1 + pw, width), min(y1 + ph, height)
        if (cx1, cy1, cx2, cy2) == (x1, y1, x1 + pw, y1 + ph):
            return cv2.resize(image[y1:y1 + ph, x1:x1 + pw], (size, size), interpolation=cv2.INTER_LINEAR)
        out = np.empty((size, size, 3), np.uint8)
        out[:] = np.round(self.mean_bgr).astype(np.uint8)
        dx1, dx2 = round((cx1 - x1) * size / pw), round((cx2 - x1) * size / pw)
        dy1, dy2 = round((cy1 - y1) * size / ph), round((cy2 - y1) * size / ph)
        if cx2 > cx1 and cy2 > cy1 and dx2 > dx1 and dy2 > dy1:
            out[dy1:dy2, dx1:dx2] = cv2.resize(image[cy1:cy2, cx1:cx2], (dx2 - dx1, dy2 - dy1),
                                               interpolation=cv2.INTER_LINEAR)
        return out

    def __call__(self, image, boxes, labels, rng):
        height, width = image.shape[:2]
        boxes = boxes.astype(np.float32)
        # zoom out: the image sits at (left, top) of a canvas up to expand_max_ratio times larger
        left = top = 0.0
        canvas_w, canvas_h = float(width), float(height)
        if self.expand_max_ratio > 1 and rng.random() < 0.5:
            ratio = rng.uniform(1, self.expand_max_ratio)
            canvas_w, canvas_h = width * ratio, height * ratio
            left, top = rng.uniform(0, canvas_w - width), rng.uniform(0, canvas_h - height)
        left, top = round(left), round(top)  # whole pixels from here on, so the pixels need no resampling offsets
        canvas_boxes = boxes + np.array([left, top, left, top], np.float32)
        px1, py1, px2, py2 = (round(v) for v in sample_crop(rng, canvas_w, canvas_h, canvas_boxes))
        px2, py2 = max(px2, px1 + 1), max(py2, py1 + 1)
        if len(boxes):
            centres = (canvas_boxes[:, :2] + canvas_boxes[:, 2:]) / 2
            keep = (centres[:, 0] > px1) & (centres[:, 0] < px2) & (centres[:, 1] > py1) & (centres[:, 1] < py2)
            canvas_boxes, labels = canvas_boxes[keep], labels[keep]
        pw, ph = px2 - px1, py2 - py1
        out = (canvas_boxes - np.array([px1, py1, px1, py1], np.float32)) / np.array([pw, ph, pw, ph], np.float32)
        out = out.clip(0, 1)
        flip = rng.random() < 0.5
        if flip:
            out = np.stack([1 - out[:, 2], out[:, 1], 1 - out[:, 0], out[:, 3]], 1)
        valid = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
        out, labels = out[valid], labels[valid]
        pixels = self._crop_resize(image, px1 - left, py1 - top, pw, ph)
        if flip:
            pixels = cv2.flip(pixels, 1)
        if self.photometric:
            pixels = photometric_distort(pixels, rng, self.photometric)
        return pixels, out.astype(np.float32), labels


class ResizeTransform:
    """Evaluation transform: resize to S x S only; boxes normalised to [0, 1]."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image, boxes, labels, rng=None):
        height, width = image.shape[:2]
        resized = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        scale = np.array([width, height, width, height], np.float32)
        return resized, (boxes / scale).astype(np.float32), labels
