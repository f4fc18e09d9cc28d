"""Run a trained SSD on images, folders, video files or a webcam and write annotated copies.

    python detect.py --weights runs/RUN/final.pth photo.jpg folder/ clip.mp4
    python detect.py --weights runs/RUN/final.pth --camera 0
    python detect.py --weights weights/ssd300_mAP_77.43_v2.pth street.jpg --only-classes person car
    python detect.py --weights runs/RUN/ssd300.detector.onnx photos/     # an exported detector

On a CPU the detector runs on ONNX Runtime (--runtime auto), on a GPU in PyTorch; the first line says which.

Annotated images keep their names under --output (default: a detections folder beside the weights file; two
inputs with the same name from different folders become NAME.jpg and NAME_2.jpg); a video becomes <name>.mp4
there; --json writes every detection (pixel boxes x1 y1 x2 y2, score, class). Frames/s are printed for video.
"""
from utils.interrupts import quiet_while_starting, started  # noqa: I001 (first: Ctrl-C while torch loads)

quiet_while_starting("detect.py")
import json
import os
import sys
import time

import cv2
import torch

from config import Config
from config_flags import add_flags, flags_given
from data import PHOTO_EXTENSIONS, image_files, read_image
from data.label_files import LABEL_FORMATS, LabelWriter
from engine import load_detector, preprocess
from utils.checkpoint import WeightsError
from utils.cli import Parser, add_device_flag, entry_point
from utils.distributed import resolve_device
from utils.errors import ConfigError, UserError
from utils.output import check_output_file, check_output_folder
from utils.visualize import draw_detections

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


DETECT_KEYS = ("class_names", "size", "batch_norm", "batch_size", "score_thresh", "nms_thresh", "top_k",
               "pre_nms_top_k", "nms", "soft_nms_method", "soft_nms_sigma", "runtime", "threads", "amp",
               "channels_last", "compile", "cuda_graph", "graph_nms_rounds", "output")
DRAW_THRESH = 0.4  # detect.py keeps what is worth drawing; evaluation keeps everything above 0.01
DETECT_BATCH = 8  # images read and run at once (not the checkpoint's training batch)


def parse_args(argv=None):
    p = Parser(__doc__, aliases={"--classes": "--only-classes"})
    p.add_argument("inputs", nargs="*", help="images, folders of images, or video files")
    p.add_argument("--weights", help="train.py checkpoint (final.pth ...), plain SSD weights, or a whole-detector "
                                     ".onnx file (required)")
    p.add_argument("--camera", type=int, help="webcam index (e.g. 0) instead of files")
    p.add_argument("--json", help="also write all detections to this JSON file")
    p.add_argument("--only-classes", nargs="+", metavar="CLASS_NAME", help="keep only these class names")
    p.add_argument("--save-labels", nargs=2, metavar=("FORMAT", "DIR"),
                   help=f"also write each image's detections as annotation files ({'|'.join(LABEL_FORMATS)}) into "
                        f"DIR, to correct in an annotation tool and train on (see data/label_files.py)")
    add_device_flag(p)
    add_flags(p, DETECT_KEYS, Config(), shown={"score_thresh": DRAW_THRESH, "output": "a detections folder "
                                               "beside --weights", "size": "the checkpoint's, else 300",
                                               "batch_norm": "the checkpoint's, else off",
                                               "class_names": "the checkpoint's, else VOC's",
                                               "batch_size": DETECT_BATCH})
    args = p.parse_args(argv)
    args.batch_size = DETECT_BATCH if args.batch_size is None else args.batch_size
    return args


class ImageDetector:
    """Model + post-processing + filtering, on lists of uint8 BGR images of any sizes."""

    def __init__(self, args):
        self.device = resolve_device(args.device)
        flags = flags_given(args)
        draw_thresh = DRAW_THRESH if args.score_thresh is None else args.score_thresh
        if (args.weights or "").lower().endswith(".onnx"):
            flags.pop("score_thresh", None)  # an exported graph keeps its own; detections are filtered below
        else:
            flags["score_thresh"] = draw_thresh
        loaded = load_detector(args.weights, self.device, flags, say=print)
        print(loaded.description)
        self.cfg, self.batch_detector, self.runtime = loaded.cfg, loaded.detector, loaded.detector.runtime
        self.class_names = list(self.cfg.model.class_names)
        wanted = [self.class_name_of(name) for name in args.only_classes or []]
        self.keep = torch.tensor([self.class_names.index(c) for c in wanted]) if wanted else None
        if draw_thresh < self.cfg.test.score_thresh:
            raise ConfigError(f"--score-thresh {draw_thresh:g}: {args.weights} keeps detections from "
                              f"{self.cfg.test.score_thresh:g} in its graph; export again with --score-thresh "
                              f"{draw_thresh:g} (python -m scripts.export_onnx --nms)")
        self.score_thresh = draw_thresh

    def class_name_of(self, name: str) -> str:
        """An --only-classes name -> the model's class name it means (typed in another case: read with a note)."""
        if name in self.class_names:
            return name
        fits = [c for c in self.class_names if c.lower() == name.lower()]
        if len(fits) == 1:
            print(f"note: --only-classes {name} read as {fits[0]}", file=sys.stderr)
            return fits[0]
        raise WeightsError(f"--only-classes {name}: not among the model's classes {', '.join(self.class_names)}")

    def __call__(self, images):
        batch, sizes = preprocess(images, self.cfg.model.size)
        results = []
        for det in self.batch_detector(batch, sizes):
            mask = det["scores"] >= self.score_thresh
            if self.keep is not None:
                mask &= torch.isin(det["labels"], self.keep.to(mask.device))
            results.append({k: v[mask].cpu().numpy() for k, v in det.items()})
        return results

    def annotate(self, image, det):
        return draw_detections(image, det["boxes"], det["scores"], det["labels"], self.class_names)

    def as_json(self, det):
        return [{"box": [round(float(v), 1) for v in box], "score": round(float(score), 4),
                 "class": self.class_names[int(label)]}
                for box, score, label in zip(det["boxes"], det["scores"], det["labels"])]


def expand_inputs(inputs):
    images, videos = [], []
    for path in inputs:
        if os.path.isdir(path):
            found = image_files(path)
            if not found:
                raise UserError(f"{path}: no images in this folder ({', '.join(sorted(PHOTO_EXTENSIONS))})")
            images += found
        elif os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS:
            videos.append(path)
        elif os.path.isfile(path):
            images.append(path)
        else:
            raise UserError(f"{path}: no such file or folder")
    return images, videos


def output_names(paths: list, folder: str) -> list:
    """The annotated copy of each input under `folder`: its file name, with _2, _3, ... when an earlier input
    (from another folder) has the same name."""
    used, names = set(), []
    for path in paths:
        stem, ext = os.path.splitext(os.path.basename(path))
        name, k = stem + ext, 1
        while name.lower() in used:
            k += 1
            name = f"{stem}_{k}{ext}"
        used.add(name.lower())
        names.append(os.path.join(folder, name))
    return names


def run_images(detector, paths, args, report, labels: LabelWriter = None) -> dict:
    """-> counts: "unreadable" inputs, annotated copies "unwritten", names "renamed" to keep both. `labels`: where
    each image's detections are also written as annotation files."""
    outputs = dict(zip(paths, output_names(paths, args.output)))
    counts = {"unreadable": 0, "unwritten": 0,
              "renamed": sum(os.path.basename(p) != os.path.basename(o) for p, o in outputs.items())}
    for start in range(0, len(paths), args.batch_size):
        chunk, images = [], []
        for path in paths[start:start + args.batch_size]:
            try:
                images.append(read_image(path))
                chunk.append(path)
            except ValueError as exc:
                counts["unreadable"] += 1
                print(f"skipped: {exc}", file=sys.stderr)
        if not images:
            continue
        for path, image, det in zip(chunk, images, detector(images)):
            out = outputs[path]
            report[path] = detector.as_json(det)
            if labels is not None:
                labels.add(path, image.shape[:2], det["boxes"], det["labels"], det["scores"])
            if cv2.imwrite(out, detector.annotate(image, det)):
                print(f"{path}: {len(det['scores'])} detection(s) -> {out}")
            else:
                counts["unwritten"] += 1
                print(f"{path}: {len(det['scores'])} detection(s); could not write {out}", file=sys.stderr)
    return counts


def run_video(detector, source, name, out_path, report):
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise UserError(f"{name}: cannot open video source")
    fps_in = capture.get(cv2.CAP_PROP_FPS) or 25.0
    writer, frames, start = None, 0, time.perf_counter()
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            det = detector([frame])[0]
            annotated = detector.annotate(frame, det)
            if writer is None:
                height, width = annotated.shape[:2]
                writer = cv2.VideoWriter(out_path, cv2.VideoWriter_fourcc(*"mp4v"), fps_in, (width, height))
            writer.write(annotated)
            report.setdefault(str(name), []).append(detector.as_json(det))
            frames += 1
            if frames % 50 == 0:
                print(f"{name}: {frames} frames, {frames / (time.perf_counter() - start):.1f} frames/s")
    except KeyboardInterrupt:
        pass
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    elapsed = time.perf_counter() - start
    print(f"{name}: {frames} frames in {elapsed:.1f} s ({frames / max(elapsed, 1e-9):.1f} frames/s) -> {out_path}")


def write_report(report: dict, path: str):
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"detections of {len(report)} input(s): {path}")


def check_args(args):
    if not args.weights:
        raise ConfigError("give --weights (a train.py checkpoint, or e.g. weights/ssd300_mAP_77.43_v2.pth)")
    if not args.inputs and args.camera is None:
        raise ConfigError("give images, folders or videos, or --camera N")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be a whole number >= 1 (got {args.batch_size})")
    if args.save_labels and args.save_labels[0] not in LABEL_FORMATS:
        raise ConfigError(f"--save-labels {args.save_labels[0]}: the format is one of {', '.join(LABEL_FORMATS)}")
    args.output = args.output or os.path.join(os.path.dirname(os.path.abspath(args.weights)), "detections")


def detect_images(detector, images: list, args, report: dict) -> dict:
    """Every image (and its label file with --save-labels), then the one summary line. -> counts."""
    start = time.perf_counter()
    labels = None
    if args.save_labels:
        kind, folder = args.save_labels
        check_output_folder(folder, "--save-labels")
        labels = LabelWriter(kind, folder, detector.class_names)
    counts = run_images(detector, images, args, report, labels)
    if labels is not None:
        print(f"labels: {labels.close()} {kind} annotation file(s) in {folder} (detections at --score-thresh "
              f"{detector.score_thresh:g}; correct them in an annotation tool and train on them)")
    if images:
        elapsed, done = time.perf_counter() - start, len(report)
        print(f"{done} image(s) in {elapsed:.1f} s ({elapsed / max(done, 1):.2f} s per image, "
              f"{detector.runtime} on {detector.device}, SSD{detector.cfg.model.size}); skipped "
              f"(unreadable): {counts['unreadable']}"
              + (f"; {counts['renamed']} written as NAME_2... (another input has the same file name)"
                 if counts["renamed"] else "")
              + (f"; {counts['unwritten']} annotated copies could not be written" if counts["unwritten"] else ""))
    return counts


def detect_videos(detector, videos: list, args, report: dict):
    sources = [(v, v) for v in videos] + ([(args.camera, f"camera{args.camera}")] if args.camera is not None else [])
    video_outputs = output_names([os.path.splitext(str(name))[0] + ".mp4" for _, name in sources], args.output)
    renamed = sum(os.path.basename(out) != os.path.splitext(os.path.basename(str(name)))[0] + ".mp4"
                  for (_, name), out in zip(sources, video_outputs))
    if renamed:
        print(f"{renamed} video(s) written as NAME_2.mp4... (another video has the same file name)")
    for (source, name), out_path in zip(sources, video_outputs):
        run_video(detector, source, name, out_path, report)


@entry_point
def main(argv=None):
    started()
    args = parse_args(argv)
    check_args(args)
    try:
        detector = ImageDetector(args)
        images, videos = expand_inputs(args.inputs)
        check_output_folder(args.output)
        if args.json:
            check_output_file(args.json, "--json")
        report, counts = {}, {"unwritten": 0}
        try:
            counts = detect_images(detector, images, args, report)
            detect_videos(detector, videos, args, report)
        except KeyboardInterrupt:
            if args.json:
                write_report(report, args.json)
            print(f"interrupted: {len(report)} input(s) done" + (f", their detections in {args.json}" if args.json
                                                                  else ""), file=sys.stderr)
            return 130
    except KeyboardInterrupt:
        print("interrupted while loading the model: nothing detected or written", file=sys.stderr)
        return 130
    if args.json:
        write_report(report, args.json)
    return 1 if images and counts["unwritten"] else 0


if __name__ == "__main__":
    sys.exit(main())
