"""Checkpoints: every entry point (train.py --resume, eval.py, detect.py, the ONNX export, the Python API)
rebuilds a checkpoint's config through the one resolver, and checkpoints written by earlier versions still load."""
import os

import numpy as np
import pytest
import torch
from helpers import make_voc_folder

import detect as detect_script
import eval as eval_script
import train
from config import MODEL_KEYS, Config
from config_flags import flags_given
from engine import Detector, load_model, preprocess
from models import VGGSSD
from scripts import export_onnx
from utils.checkpoint import read_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """2 iterations with non-default size (512), labels, BatchNorm, prior sizes and pixel format (from scratch:
    torchvision)."""
    folder = tmp_path_factory.mktemp("one_way")
    images = {f"i{k}": ([("cat", 4, 5, 40, 44), ("dog", 30, 20, 60, 46)], 64, 48) for k in range(3)}
    make_voc_folder(folder / "data", images, sets={"trainval": ["i0", "i1"], "test": ["i2"]})
    run = folder / "run"
    assert train.main(["--dataset", "VOC", "--dataset-root", str(folder / "data"), "--class-names", "dog", "cat",
                       "--size", "512", "--batch-norm", "--basenet", "none", "--batch-size", "2", "--workers", "0",
                       "--min-sizes", "20", "50", "130", "210", "290", "370", "450",
                       "--max-iter", "2", "--eval-every", "0", "--no-final-eval", "--no-tensorboard",
                       "--checkpoint-every", "0", "--output", str(run)]) == 0
    return folder, str(run / "final.pth")


def test_every_entry_point_rebuilds_the_trained_config_and_outputs(trained, tmp_path):
    folder, weights = trained
    saved = read_state(weights)
    cfg = Config.from_dict(saved["config"])
    m = cfg.model
    assert (m.size, m.batch_norm, m.class_names, m.pixel_format) == (512, True, ("dog", "cat"), "torchvision")
    assert cfg.model.min_sizes == (20, 50, 130, 210, 290, 370, 450)
    reference = VGGSSD.from_config(cfg).eval()
    reference.load_state_dict(saved["model"])
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    batch, _ = preprocess([image], 512)
    with torch.no_grad():
        expected = reference(batch)

    configs = {
        "eval.py": load_model(weights, "cpu", flags_given(eval_script.parse_args(["--weights", weights])))[1],
        "detect.py": detect_script.ImageDetector(detect_script.parse_args(["--weights", weights, "x.jpg"])).cfg,
        "export": load_model(weights, "cpu", flags_given(export_onnx.parse_args(["--weights", weights])))[1],
        "notebook": load_model(weights, "cpu")[1],  # demo.ipynb's call
    }
    for where, rebuilt in configs.items():
        assert {k: rebuilt.to_dict()[k] for k in MODEL_KEYS} == {k: cfg.to_dict()[k] for k in MODEL_KEYS}, where
    model, _ = load_model(weights, "cpu")
    with torch.no_grad():
        loc, conf = model(batch)
    assert torch.equal(loc, expected[0]) and torch.equal(conf, expected[1])
    assert torch.equal(model.priors, reference.priors) and model.priors[0, 2] == pytest.approx(20 / 512)
    # the export writes the same network (its outputs against onnxruntime are checked in test_export_detect)
    assert export_onnx.main(["--weights", weights, "--output", str(tmp_path / "m.onnx")]) == 0
    # and eval.py itself runs on it, writing beside the weights
    assert eval_script.main(["--weights", weights, "--workers", "0", "--batch-size", "1"]) == 0
    assert os.path.isfile(os.path.join(os.path.dirname(weights), "eval", "metrics.json"))


def test_a_checkpoint_of_the_earlier_format_loads_with_the_same_outputs(tmp_path):
    """The config as the previous version stored it: lists, `conf_thresh`, `save_folder`, `device`."""
    old_config = {"size": 300, "batch_norm": False, "basenet": "none", "pixel_format": "torchvision",
                  "labels": ["ellipse", "rectangle", "triangle", "star", "cross"], "dataset": "shapes",
                  "dataset_root": "", "sets": ["train"], "test_sets": ["test"], "conf_thresh": 0.05,
                  "nms_thresh": 0.45, "top_k": 200, "save_folder": "weights/run", "device": "auto",
                  "lr_steps": [4000, 5200], "graph_nms_rounds": 12}
    torch.manual_seed(0)
    model = VGGSSD(300, 6, pixel_format="torchvision").eval()
    torch.save({"config": old_config, "model": model.state_dict(), "iteration": 10, "best_map": -1.0},
               tmp_path / "final.pth")
    loaded, cfg = load_model(str(tmp_path / "final.pth"))
    assert cfg.test.score_thresh == 0.05 and cfg.run.output == "weights/run"
    assert cfg.model.class_names == tuple(old_config["labels"])
    images = torch.randint(0, 255, (1, 3, 300, 300), dtype=torch.uint8)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(loaded(images), model(images)))
    # the detector does not change the caller's model (channels-last works on a copy)
    Detector.from_config(loaded, cfg.replace(channels_last=True))
    assert loaded.vgg[0].weight.is_contiguous()
