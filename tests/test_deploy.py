"""The detector on ONNX Runtime (engine/deploy.py): the whole detector in one graph gives engine.Detector's
detections; --runtime auto|torch|onnxruntime for eval.py and detect.py, the cached export, INT8."""
import glob
import json
import os

import cv2
import numpy as np
import pytest
import torch

import detect as detect_script
import eval as eval_script
from config_resolve import config_for
from data import read_image
from data.shapes import generate
from engine import Detector, OnnxDetector, deploy, export_onnx, load_detector, loading, preprocess
from models import build_model
from scripts import export_onnx as export_script
from tests.helpers import assert_same_detections, lively_model
from utils.errors import ConfigError

ort = pytest.importorskip("onnxruntime")
BCCD = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "bccd")
CPU = torch.device("cpu")


def sample_images(count: int = 4) -> list:
    """Real photographs when ../shared has BCCD, else the built-in shapes scenes."""
    found = sorted(glob.glob(os.path.join(BCCD, "JPEGImages", "*.jpg")))[:count]
    if found:
        return [read_image(p) for p in found]
    return [generate(0, "test", i)[0] for i in range(count)]


@pytest.mark.parametrize("backbone,size", [("vgg16", 300), ("vgg16", 512), ("resnet50", 300),
                                           ("mobilenet_v3", 320)])
def test_whole_detector_graph_gives_the_detectors_detections(tmp_path, backbone, size):
    cfg = config_for("VOC", backbone=backbone, size=size, basenet="none")
    model = lively_model(build_model(cfg), size)
    export_onnx(model, cfg, str(tmp_path / "d.onnx"))
    batch, _ = preprocess(sample_images(3), size)
    ours = Detector.from_config(model, cfg).padded(batch)
    theirs = OnnxDetector(str(tmp_path / "d.onnx"), threads=1).padded(batch)
    assert theirs.boxes.shape == ours.boxes.shape == (3, 200, 4)
    assert ours.counts.min() > 0
    assert_same_detections(ours, theirs)


def test_nms_node_keeps_scores_equal_to_the_threshold_and_suppresses_above_the_iou():
    """The exported NonMaxSuppression against hand-computed cases: score >= threshold enters (ONNX Runtime's own
    rule is >), IoU > threshold suppresses."""

    class Nms(torch.nn.Module):
        def forward(self, boxes, scores):
            return deploy._NonMaxSuppression.apply(boxes, scores, 0.45, 0.25)

    # box0 [0, 0, 10, 10] score .9; box1 [5, 0, 15, 10]: IoU 50/150 = .33 <= .45, kept; box2 [1, 0, 11, 10]:
    # IoU with box0 90/110 = .82, suppressed; box3 far away, score exactly .25 (= the threshold): kept;
    # box4 far away, score .2499: below, dropped.
    boxes = torch.tensor([[[0, 0, 10, 10], [5, 0, 15, 10], [1, 0, 11, 10], [50, 50, 60, 60], [80, 80, 90, 90]]],
                         dtype=torch.float32) / 100
    scores = torch.tensor([[[0.9, 0.6, 0.7, 0.25, 0.2499]]])
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"nms-{os.getpid()}.onnx")
    torch.onnx.export(Nms(), (boxes, scores), path, dynamo=False, opset_version=deploy.OPSET,
                      input_names=["boxes", "scores"], output_names=["selected"])
    selected, = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(
        None, {"boxes": boxes.numpy(), "scores": scores.numpy()})
    os.remove(path)
    assert sorted(selected[:, 2].tolist()) == [0, 1, 3]
    assert sorted(Nms()(boxes, scores)[:, 2].tolist()) == [0, 1, 3]  # the eager twin used while tracing


@pytest.fixture(scope="module")
def lively_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lively")
    cfg = config_for("shapes", backbone="mobilenet_v3", basenet="none", shapes_test_images=12, batch_size=4,
                     workers=0)
    model = lively_model(build_model(cfg), cfg.model.size)
    path = str(folder / "final.pth")
    torch.save({"config": cfg.to_dict(), "model": model.state_dict()}, path)
    return path


def test_runtime_auto_exports_once_reuses_and_never_reuses_changed_weights(tmp_path, lively_checkpoint):
    weights = str(tmp_path / "w.pth")
    state = torch.load(lively_checkpoint, weights_only=True)
    torch.save(state, weights)
    said = []
    loaded = load_detector(weights, CPU, {}, say=said.append)
    assert loaded.detector.runtime == "onnxruntime" and "auto" in loaded.description and len(said) == 1
    cached = glob.glob(str(tmp_path / "w.*.onnx"))
    assert len(cached) == 1 and "exported to" in loaded.description
    again = load_detector(weights, CPU, {}, say=said.append)
    assert "reused" in again.description and len(said) == 1  # no second export
    state["model"] = {k: v + 1 if v.is_floating_point() else v for k, v in state["model"].items()}
    torch.save(state, weights)  # same name, new weights: a new graph, not the cached one
    changed = load_detector(weights, CPU, {}, say=said.append)
    assert len(said) == 2 and len(glob.glob(str(tmp_path / "w.*.onnx"))) == 2 and "exported to" in changed.description
    # other post-processing settings are another graph too
    load_detector(weights, CPU, {"nms_thresh": 0.5}, say=said.append)
    assert len(said) == 3


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_cached_export_that_does_not_load_is_exported_again(tmp_path, lively_checkpoint, damage):
    weights = str(tmp_path / "w.pth")
    torch.save(torch.load(lively_checkpoint, weights_only=True), weights)
    first = load_detector(weights, CPU, {})
    cached = glob.glob(str(tmp_path / "w.*.onnx"))[0]
    good = open(cached, "rb").read()
    with open(cached, "wb") as f:
        f.write({"truncated": good[: len(good) // 3], "garbage": b"not a graph" * 100, "empty": b""}[damage])
    images = preprocess(sample_images(2), 320)[0]
    for runtime in ("auto", "onnxruntime"):
        said = []
        loaded = load_detector(weights, CPU, {"runtime": runtime}, say=said.append)
        assert loaded.detector.runtime == "onnxruntime" and "exported to" in loaded.description
        assert said[0].startswith(f"the cached ONNX export {cached} does not load (") and \
            said[0].endswith("): exporting it again")
        assert_same_detections(first.detector.padded(images), loaded.detector.padded(images))
        with open(cached, "wb") as f:
            f.write(b"")


def test_runtime_choice_and_what_it_says(tmp_path, lively_checkpoint, monkeypatch):
    assert load_detector(lively_checkpoint, CPU, {"runtime": "torch"}).detector.runtime == "torch"
    soft = load_detector(lively_checkpoint, CPU, {"nms": "soft"})
    assert soft.detector.runtime == "torch" and "--nms soft runs in PyTorch only" in soft.description
    with pytest.raises(ConfigError, match="--runtime onnxruntime: --nms soft runs in PyTorch only"):
        load_detector(lively_checkpoint, CPU, {"nms": "soft", "runtime": "onnxruntime"})
    threads = load_detector(lively_checkpoint, CPU, {"threads": 1})
    assert threads.detector.threads == 1 and "1 thread(s)" in threads.description

    monkeypatch.setattr(loading, "onnxruntime_version", lambda: None)  # a machine without onnxruntime
    missing = load_detector(lively_checkpoint, CPU, {})
    assert missing.detector.runtime == "torch" and "onnxruntime (or onnx) is not installed" in missing.description
    monkeypatch.undo()

    def broken(*args, **kwargs):
        raise RuntimeError("exporter says no")

    monkeypatch.setattr(loading, "export_onnx", broken)
    monkeypatch.setattr(loading, "cached_export_path", lambda w, c: str(tmp_path / "never.onnx"))
    fallback = load_detector(lively_checkpoint, CPU, {})
    assert fallback.detector.runtime == "torch"
    assert "auto: the ONNX export failed (RuntimeError: exporter says no)" in fallback.description
    with pytest.raises(ConfigError, match="export of .* failed"):
        load_detector(lively_checkpoint, CPU, {"runtime": "onnxruntime"})


def test_unwritable_weights_folder_caches_in_home(tmp_path, lively_checkpoint, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(loading.os, "access", lambda path, mode: False)
    path = loading.cached_export_path(lively_checkpoint, config_for("shapes"))
    assert path.startswith(str(tmp_path / "home" / ".cache" / "ssd" / "onnx"))


def test_eval_map_is_the_same_on_both_runtimes_and_from_the_onnx_file(tmp_path, lively_checkpoint, capsys):
    maps = {}
    for runtime in ("torch", "onnxruntime"):
        out = tmp_path / runtime
        assert eval_script.main(["--weights", lively_checkpoint, "--runtime", runtime, "--output", str(out)]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["runtime"] == runtime
        maps[runtime] = metrics["mAP"]
        assert f"runtime: {'PyTorch' if runtime == 'torch' else 'onnxruntime'}" in capsys.readouterr().out
    assert maps["onnxruntime"] == pytest.approx(maps["torch"], abs=1e-4) and maps["torch"] > 0

    graph = str(tmp_path / "d.onnx")
    assert export_script.main(["--weights", lively_checkpoint, "--nms", "--output", graph]) == 0
    assert eval_script.main(["--weights", graph, "--output", str(tmp_path / "file")]) == 0
    assert "fp32 graph" in capsys.readouterr().out
    assert json.loads((tmp_path / "file" / "metrics.json").read_text())["mAP"] == pytest.approx(maps["torch"],
                                                                                                abs=1e-4)
    # settings fixed in the graph, and PyTorch-only settings, are one-line errors
    for flags, message in ((["--nms-thresh", "0.6"], "holds nms-thresh 0.45 in its graph; export again"),
                           (["--runtime", "torch"], "is an ONNX file, which ONNX Runtime runs"),
                           (["--nms", "soft"], "a PyTorch setting")):
        assert eval_script.main(["--weights", graph, *flags]) == 2
        assert message in capsys.readouterr().err
    network_only = str(tmp_path / "n.onnx")
    assert export_script.main(["--weights", lively_checkpoint, "--output", network_only]) == 0
    assert eval_script.main(["--weights", network_only]) == 2
    assert "exported without --nms" in capsys.readouterr().err


def test_detect_prints_the_runtime_and_gives_the_same_boxes(tmp_path, lively_checkpoint, capsys):
    image = tmp_path / "in" / "a.jpg"
    image.parent.mkdir()
    cv2.imwrite(str(image), generate(0, "test", 1)[0])
    reports = {}
    for runtime in ("torch", "onnxruntime"):
        out = tmp_path / runtime
        assert detect_script.main(["--weights", lively_checkpoint, str(image), "--runtime", runtime, "--output",
                                   str(out), "--json", str(out) + ".json", "--score-thresh", "0.3"]) == 0
        printed = capsys.readouterr().out
        first = [line for line in printed.splitlines() if not line.startswith("exporting the detector")][0]
        assert first.startswith(f"runtime: {'PyTorch' if runtime == 'torch' else 'onnxruntime'}")
        assert f"s per image, {runtime} on cpu" in printed
        reports[runtime] = json.loads((tmp_path / f"{runtime}.json").read_text())[str(image)]
    assert len(reports["torch"]) == len(reports["onnxruntime"]) > 0
    for a, b in zip(reports["torch"], reports["onnxruntime"]):
        assert a["class"] == b["class"] and np.allclose(a["box"], b["box"], atol=0.2)
    # an exported whole detector runs with detect.py's defaults (its graph keeps score-thresh 0.01); a higher
    # threshold filters, a lower one is one line
    graph = str(tmp_path / "model.detector.onnx")
    assert export_script.main(["--weights", lively_checkpoint, "--nms", "--output", graph]) == 0
    assert detect_script.main(["--weights", graph, str(image), "--output", str(tmp_path / "g"), "--json",
                               str(tmp_path / "g.json")]) == 0
    drawn = json.loads((tmp_path / "g.json").read_text())[str(image)]
    assert all(d["score"] >= 0.4 for d in drawn)
    assert detect_script.main(["--weights", graph, str(image), "--score-thresh", "0.3", "--output",
                               str(tmp_path / "h")]) == 0
    capsys.readouterr()
    assert detect_script.main(["--weights", graph, str(image), "--score-thresh", "0.001", "--output",
                               str(tmp_path / "i")]) == 2
    assert "--score-thresh 0.001: " in capsys.readouterr().err


def test_int8_export_calibrates_on_the_users_images_and_runs_in_eval(tmp_path, lively_checkpoint, capsys):
    import onnx
    calibration = tmp_path / "calib"
    calibration.mkdir()
    for i in range(6):
        cv2.imwrite(str(calibration / f"{i}.jpg"), generate(0, "train", i)[0])
    (calibration / "broken.jpg").write_bytes(b"not a jpeg")
    target = str(tmp_path / "m.int8.onnx")
    assert export_script.main(["--weights", lively_checkpoint, "--int8", "--calibration-images", str(calibration),
                               "--output", target]) == 0
    printed = capsys.readouterr().out
    assert "calibration: 1 unreadable image(s) skipped, first: broken.jpg" in printed
    assert "INT8, calibrated on 6 images" in printed
    ops = {node.op_type for node in onnx.load(target).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "NonMaxSuppression"} <= ops
    assert deploy.read_metadata(target)["int8"] is True
    assert eval_script.main(["--weights", target, "--output", str(tmp_path / "eval")]) == 0
    assert "INT8 graph" in capsys.readouterr().out


def test_readme_rows_of_the_runtime_errors(tmp_path, lively_checkpoint, capsys):
    """README's bad-input rows for the runtimes and the export, word for word (paths filled in)."""
    graph, network = str(tmp_path / "M.onnx"), str(tmp_path / "ssd300.onnx")
    assert export_script.main(["--weights", lively_checkpoint, "--nms", "--output", graph]) == 0
    assert export_script.main(["--weights", lively_checkpoint, "--output", network]) == 0
    capsys.readouterr()
    rows = [
        (eval_script.main, ["--weights", lively_checkpoint, "--nms", "soft", "--runtime", "onnxruntime"],
         "error: --runtime onnxruntime: --nms soft runs in PyTorch only; use --runtime torch"),
        (eval_script.main, ["--weights", graph, "--nms-thresh", "0.6"],
         f"error: --nms-thresh 0.6: {graph} holds nms-thresh 0.45 in its graph; export again with --nms-thresh 0.6 "
         f"(python -m scripts.export_onnx --nms)"),
        (eval_script.main, ["--weights", graph, "--runtime", "torch"],
         f"error: --runtime torch: {graph} is an ONNX file, which ONNX Runtime runs; give the .pth weights for "
         f"PyTorch"),
        (eval_script.main, ["--weights", network],
         f"error: {network}: exported without --nms (network only); eval.py and detect.py need the whole detector: "
         f"python -m scripts.export_onnx --nms"),
        (export_script.main, ["--weights", lively_checkpoint, "--int8"],
         "error: --int8 needs --calibration-images DIR (a folder of images to calibrate the INT8 ranges on) "
         "(see --help)"),
        (export_script.main, ["--weights", lively_checkpoint, "--int8", "--calibration-images", "nope/"],
         "error: --calibration-images nope/: no such folder"),
    ]
    for main, argv, line in rows:
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        assert code == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == line
