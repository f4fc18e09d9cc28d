import json
import os

import cv2
import numpy as np
import pytest
import torch

import detect as detect_script
from engine import export_onnx, load_model
from models import VGGSSD


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """Untrained weights saved in train.py's checkpoint format (config + model)."""
    from config_resolve import config_for
    folder = tmp_path_factory.mktemp("ckpt")
    cfg = config_for("shapes", batch_norm=False)
    torch.manual_seed(0)
    model = VGGSSD(300, cfg.model.num_classes)
    path = str(folder / "final.pth")
    torch.save({"config": cfg.to_dict(), "model": model.state_dict()}, path)
    return path


def test_onnx_export_matches_pytorch(tmp_path, checkpoint):
    ort = pytest.importorskip("onnxruntime")
    model, cfg = load_model(checkpoint)
    export_onnx(model, cfg, str(tmp_path / "ssd.onnx"), nms=False)
    images = torch.randint(0, 255, (2, 3, 300, 300), dtype=torch.uint8)
    session = ort.InferenceSession(str(tmp_path / "ssd.onnx"), providers=["CPUExecutionProvider"])
    boxes, scores = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        loc, conf = model(images)
    assert boxes.shape == (2, 8732, 4) and scores.shape == (2, 8732, cfg.model.num_classes)
    assert np.allclose(boxes, model.box_coder.decode(loc).numpy(), atol=1e-4)
    assert np.allclose(scores, torch.softmax(conf, -1).numpy(), atol=1e-4)


def test_detect_script_on_images_and_video(tmp_path, checkpoint, capsys):
    frames = [np.full((120, 160, 3), 40 * i, np.uint8) for i in range(3)]
    cv2.imwrite(str(tmp_path / "a.jpg"), frames[0])
    (tmp_path / "broken.jpg").write_bytes(b"nope")
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5, (160, 120))
    for frame in frames:
        writer.write(frame)
    writer.release()
    out = tmp_path / "out"
    code = detect_script.main(["--weights", checkpoint, str(tmp_path / "a.jpg"), str(tmp_path / "broken.jpg"),
                               str(tmp_path / "clip.avi"), "--output", str(out), "--score-thresh", "0.05",
                               "--json", str(tmp_path / "det.json"), "--device", "cpu"])
    assert code == 0
    assert cv2.imread(str(out / "a.jpg")).shape == (120, 160, 3)
    assert os.path.isfile(out / "clip.mp4")
    report = json.loads((tmp_path / "det.json").read_text())
    assert len(report[str(tmp_path / "clip.avi")]) == 3
    assert all(d["score"] >= 0.05 and d["class"] in ("ellipse", "rectangle", "triangle", "star", "cross")
               for d in report[str(tmp_path / "a.jpg")])
    assert detect_script.main(["--weights", checkpoint, str(tmp_path / "a.jpg"), "--only-classes", "unicorn",
                               "--output", str(out)]) == 2
    assert "error: --only-classes unicorn: not among the model's classes ellipse, rectangle" in capsys.readouterr().err
    assert detect_script.main(["--weights", checkpoint, str(tmp_path / "a.jpg"), "--only-classes", "Star", "cross",
                               "--output", str(out), "--json", str(tmp_path / "stars.json")]) == 0
    assert "note: --only-classes Star read as star" in capsys.readouterr().err
    kept = json.loads((tmp_path / "stars.json").read_text())[str(tmp_path / "a.jpg")]
    assert all(d["class"] in ("star", "cross") for d in kept)


def test_same_named_videos_and_ctrl_c_in_detect(tmp_path, checkpoint, capsys, monkeypatch):
    for folder in ("a", "b"):
        os.makedirs(tmp_path / folder)
        writer = cv2.VideoWriter(str(tmp_path / folder / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
        for i in range(2 if folder == "a" else 3):
            writer.write(np.full((48, 64, 3), 60 * i, np.uint8))
        writer.release()
    out = tmp_path / "out"
    assert detect_script.main(["--weights", checkpoint, str(tmp_path / "a" / "clip.avi"),
                               str(tmp_path / "b" / "clip.avi"), "--output", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "1 video(s) written as NAME_2.mp4" in printed
    assert cv2.VideoCapture(str(out / "clip.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 2
    assert cv2.VideoCapture(str(out / "clip_2.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 3
    # Ctrl-C after the first image: the detections done are written, exit 130
    for name in ("x", "y"):
        cv2.imwrite(str(tmp_path / f"{name}.jpg"), np.full((48, 64, 3), 90, np.uint8))
    calls = {"n": 0}
    original = detect_script.ImageDetector.__call__

    def interrupted(self, images):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, images)

    monkeypatch.setattr(detect_script.ImageDetector, "__call__", interrupted)
    assert detect_script.main(["--weights", checkpoint, str(tmp_path / "x.jpg"), str(tmp_path / "y.jpg"),
                               "--batch-size", "1", "--output", str(out), "--json", str(tmp_path / "d.json"),
                               "--device", "cpu"]) == 130
    assert list(json.loads((tmp_path / "d.json").read_text())) == [str(tmp_path / "x.jpg")]
    assert "interrupted: 1 input(s) done, their detections in" in capsys.readouterr().err


def test_eval_script_runs_the_network_and_writes_its_outputs(tmp_path, checkpoint):
    import eval as eval_script
    out = tmp_path / "out"
    assert eval_script.main(["--weights", checkpoint, "--limit", "2", "--workers", "0", "--batch-size", "2",
                             "--device", "cpu", "--output", str(out), "--nms", "soft"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["metric"] == "voc07" and set(metrics["AP"]) == {"ellipse", "rectangle", "triangle", "star",
                                                                  "cross"}
    assert metrics["speed"]["images"] == 2
    for name in ("examples.jpg", "pr_curves.png", "ap_table.png", "comp4_det_test_star.txt"):
        assert (out / name).stat().st_size > 0, name
