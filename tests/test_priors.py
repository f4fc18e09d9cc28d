"""Prior coverage (hand-computed cases, and the fast exact path against every prior), the fit, and the priors a
checkpoint carries: every entry point rebuilds them from it, and flags that would change them are refused."""
import os

import pytest
import torch
from helpers import make_voc_folder

import train
from config import PRIORS, table_layout
from config_checks import check_model_flags
from config_resolve import config_for, resolve
from engine import load_model
from engine.loading import cached_export_path
from layers import PriorBox, cxcywh_to_xyxy, pairwise_box_iou
from layers.prior_fit import coverage_of, fit_layout
from models.weights import read_state
from utils.checkpoint import atomic_save
from utils.errors import ConfigError

SSDLITE = table_layout(("ssdlite", 320))


def box(cx, cy, w, h):
    return torch.tensor([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]])


def test_box_exactly_on_a_prior_has_iou_one():
    # map 0 of SSDLite320: 20 x 20 cells, cell (10, 10) centred at 10.5 / 20; its first prior 64 / 320 = 0.2 wide
    coverage, best = coverage_of(box(0.525, 0.525, 0.2, 0.2), SSDLITE, 0.5)
    assert best.item() == pytest.approx(1.0, abs=1e-5) and coverage.covered == 1.0


def test_box_between_two_cells():
    # 0.025 off both neighbouring cell centres in x: overlap 0.175 x 0.2 of two 0.2 x 0.2 squares -> 0.035 / 0.045;
    # every other prior is worse (the 0.265 square: 0.04 / 0.07; ar 2: 0.0283 / 0.0517; map 1's 0.35: 0.327)
    _, best = coverage_of(box(0.55, 0.525, 0.2, 0.2), SSDLITE, 0.5)
    assert best.item() == pytest.approx(0.035 / 0.045, abs=1e-5)


def test_box_smaller_than_any_prior():
    # 8 px at 320 = 0.025 square inside the smallest priors (area 0.2^2 for the square and the ar 2, 3 ones)
    coverage, best = coverage_of(box(0.525, 0.525, 0.025, 0.025), SSDLITE, 0.5)
    assert best.item() == pytest.approx(0.025 ** 2 / 0.04, abs=1e-5) and coverage.covered == 0.0


@pytest.mark.parametrize("key", sorted(PRIORS))
def test_nearest_cell_equals_every_prior(key):
    """The exact shortcut against the plain definition: the best IoU over every prior of the layout."""
    torch.manual_seed(0)
    corner = torch.rand(600, 2) * 0.9
    boxes = torch.cat([corner, corner + torch.rand(600, 2) * 0.6 + 0.005], 1).clamp(max=1)
    reference = pairwise_box_iou(boxes, cxcywh_to_xyxy(PriorBox(PRIORS[key]).forward())).amax(1)
    _, best = coverage_of(boxes, PRIORS[key], 0.5)
    assert torch.allclose(best, reference, atol=1e-5)


def test_fit_covers_small_objects_and_keeps_the_heads():
    torch.manual_seed(1)
    side = torch.rand(3000, 1) * 0.05 + 0.04  # 13-29 px at 320: below every SSDLite prior
    corner = torch.rand(3000, 2) * 0.85
    boxes = torch.cat([corner, corner + side * torch.tensor([[1.0, 1.3]])], 1)
    fit = fit_layout(boxes, SSDLITE, 0.5)
    assert fit.sample["layout"].covered < 0.05
    assert fit.sample["fitted"].covered > 0.5
    assert fit.kind == "fitted" and fit_layout(boxes, SSDLITE, 0.5).layout == fit.layout  # deterministic
    sizes = fit.layout["min_sizes"]
    assert sizes == pytest.approx([sizes[0] + (sizes[-1] - sizes[0]) * k / 5 for k in range(6)], abs=0.1)  # linear
    assert all(a < b for a, b in zip(sizes, sizes[1:])) and sizes[-1] <= 0.95 * 320
    assert fit.layout["max_sizes"] == sizes[1:] + [320] and fit.layout["aspect_ratios"] == SSDLITE["aspect_ratios"]
    assert PriorBox(fit.layout).boxes_per_location() == PriorBox(SSDLITE).boxes_per_location()
    assert PriorBox(fit.layout).forward().shape == PriorBox(SSDLITE).forward().shape


def test_fit_keeps_a_layout_that_is_already_best():
    on_priors = PriorBox(SSDLITE).forward()[:1200:6]  # each first map's square prior, wholly matched
    fit = fit_layout(cxcywh_to_xyxy(on_priors), SSDLITE, 0.5)
    assert fit.sample["layout"].covered == 1.0 and fit.sample["fitted"].covered == 1.0


def old_checkpoint(path, **config):
    """A checkpoint as written before the prior layout was stored: no `prior_layout`, no `priors`."""
    cfg = config_for("VOC", class_names=("a", "b"), **{"backbone": "vgg16", **config})  # before other backbones
    model_cfg = cfg.to_dict()
    del model_cfg["prior_layout"], model_cfg["priors"]
    from models import build_model
    atomic_save({"config": model_cfg, "model": build_model(cfg).state_dict()}, path)
    return cfg


def test_old_checkpoint_loads_its_own_priors_whatever_the_flags(tmp_path):
    path = str(tmp_path / "old.pth")
    old_checkpoint(path, backbone="mobilenet_v3", basenet="none", min_sizes=(32, 86.4, 140.8, 195.2, 249.6, 304))
    expected = PriorBox(table_layout(("ssdlite", 320), (32, 86.4, 140.8, 195.2, 249.6, 304))).forward()
    model, cfg = load_model(path)
    assert torch.equal(model.priors, expected)
    # another dataset on the command line (another table of priors for SSD300) does not change them
    model, _ = load_model(path, flags={"dataset": "COCO"})
    assert torch.equal(model.priors, expected)
    with pytest.raises(ConfigError, match="^--min-sizes: .* carries .*drop --min-sizes"):
        load_model(path, flags={"min_sizes": (30, 86.4, 140.8, 195.2, 249.6, 304)})
    load_model(path, flags={"min_sizes": (32, 86.4, 140.8, 195.2, 249.6, 304)})  # the same sizes: no change


def test_voc_checkpoint_evaluated_with_coco_flag_keeps_voc_priors(tmp_path):
    path = str(tmp_path / "voc.pth")
    old_checkpoint(path)
    model, cfg = load_model(path, flags={"dataset": "COCO"})
    assert torch.equal(model.priors, PriorBox(PRIORS[("voc", 300)]).forward())
    assert cfg.model.prior_layout["min_sizes"] == PRIORS[("voc", 300)]["min_sizes"]


def test_priors_flag_on_a_checkpoint(tmp_path):
    fitted = dict(table_layout(("ssdlite", 320)), min_sizes=[20.0, 90, 140, 190, 240, 300],
                  max_sizes=[90, 140, 190, 240, 300, 320.0])
    saved = resolve({"dataset": "VOC", "class_names": ["a"], "backbone": "mobilenet_v3"}).replace(prior_layout=fitted)
    with pytest.raises(ConfigError, match="^--priors: x.pth was trained with the prior layout it carries "
                                          r"\(sizes 20 90 140"):
        check_model_flags("x.pth", saved.to_dict(), {"priors": "layout"})
    check_model_flags("x.pth", saved.to_dict(), {"priors": "auto"})  # what it was trained with
    plain = resolve({"dataset": "VOC", "class_names": ["a"], "backbone": "mobilenet_v3", "priors": "layout"})
    check_model_flags("x.pth", plain.to_dict(), {"priors": "layout"})
    with pytest.raises(ConfigError, match="^--priors fit with --min-sizes"):
        resolve({"dataset": "VOC", "class_names": ["a"], "priors": "fit", "min_sizes": [30, 60, 111, 162, 213, 264]})


def test_onnx_cache_key_covers_the_priors(tmp_path):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"same weights")
    cfg = config_for("VOC")
    other = cfg.replace(prior_layout=table_layout(("coco", 300)))
    assert cached_export_path(str(weights), cfg) != cached_export_path(str(weights), other)


def small_objects_folder(folder):
    images = {f"im{i}": ([("dot", 20 + 30 * k, 30 + 20 * i, 34 + 30 * k, 46 + 20 * i) for k in range(6)], 320, 240)
              for i in range(6)}
    make_voc_folder(folder, images, {"trainval": list(images), "test": list(images)[:2]})


def test_train_fits_priors_that_the_checkpoint_carries(tmp_path, capsys):
    data, run = tmp_path / "data", str(tmp_path / "run")
    small_objects_folder(data)
    flags = ["--dataset", "VOC", "--dataset-root", str(data), "--class-names", "dot", "--sets", "trainval",
             "--test-sets", "test", "--backbone", "mobilenet_v3", "--basenet", "none", "--batch-size", "2",
             "--max-iter", "1", "--workers", "0", "--no-final-eval", "--eval-every", "0", "--no-tensorboard"]
    assert train.main(flags + ["--output", run]) == 0
    text = capsys.readouterr().err
    assert "prior coverage (IoU >= 0.5): 0.0% of 36 boxes with the mobilenet_v3 320 layout; fitted: " in text
    assert "priors: fitted to the 36 training boxes" in text
    state = read_state(os.path.join(run, "final.pth"))
    layout = state["config"]["prior_layout"]
    assert layout["min_sizes"] != SSDLITE["min_sizes"] and layout["min_sizes"][0] < 40
    model, cfg = load_model(os.path.join(run, "final.pth"))
    assert torch.equal(model.priors, PriorBox(layout).forward())
    # resuming with flags that would change its priors is one line, exit 2
    assert train.main(flags + ["--max-iter", "2", "--resume", run, "--min-sizes", "32", "86", "140", "195", "250",
                               "304"]) == 2
    assert train.main(flags + ["--max-iter", "2", "--resume", run, "--priors", "layout"]) == 2
    # --priors layout on a new run keeps the table
    capsys.readouterr()
    assert train.main(flags + ["--output", str(tmp_path / "plain"), "--priors", "layout"]) == 0
    assert "priors: the layout's (--priors layout)" in capsys.readouterr().err
    plain = read_state(str(tmp_path / "plain" / "final.pth"))["config"]["prior_layout"]
    assert plain == SSDLITE


def test_bench_priors_table(capsys, tmp_path):
    from benchmarks import bench_priors
    bench_priors.main(["--coco-images", "40", "--coco-boxes", "300", "--json", str(tmp_path / "p.json")])
    out = capsys.readouterr().out
    assert "| vgg16 300 | " in out and " | 8,732 | " in out and "| mobilenet_v3 320 |" in out
    import json
    rows = json.load(open(tmp_path / "p.json"))["rows"]
    assert all(r["max_difference"] < 1e-5 and r["fitted"] >= r["coverage"] for r in rows)


def test_onnx_export_carries_fitted_priors_and_decodes_the_same(tmp_path):
    pytest.importorskip("onnxruntime")
    from engine import Detector, load_detector, preprocess
    from engine.deploy import read_metadata
    from models import build_model
    from tests.helpers import assert_same_detections, lively_model
    from tests.test_deploy import sample_images
    fitted = table_layout(("ssdlite", 320), (20, 70, 120, 170, 220, 290))
    cfg = config_for("VOC", class_names=("a", "b"), backbone="mobilenet_v3", basenet="none")
    cfg = cfg.replace(prior_layout=fitted)
    model = lively_model(build_model(cfg), 320)
    path = str(tmp_path / "fitted.pth")
    atomic_save({"config": cfg.to_dict(), "model": model.state_dict()}, path)
    loaded = load_detector(path, torch.device("cpu"), {"runtime": "onnxruntime"})
    export = loaded.description.split()[-1]
    assert read_metadata(export)["prior_layout"] == fitted
    batch, _ = preprocess(sample_images(2), 320)
    assert_same_detections(Detector.from_config(model, cfg).padded(batch), loaded.detector.padded(batch))
    onnx_file = load_detector(export, torch.device("cpu"), {})  # the .onnx file alone
    assert onnx_file.cfg.model.prior_layout == fitted


def test_threads_beyond_the_cores_are_capped(tmp_path, capsys):
    from utils.distributed import usable_cores
    path = str(tmp_path / "w.pth")
    old_checkpoint(path, backbone="mobilenet_v3", basenet="none")
    from engine import load_detector
    loaded = load_detector(path, torch.device("cpu"), {"threads": 1000, "runtime": "torch"})
    assert loaded.cfg.test.threads == usable_cores() and torch.get_num_threads() == usable_cores()
    assert f"note: --threads 1000 capped to {usable_cores()}" in capsys.readouterr().out


def test_changing_the_backbone_rebuilds_the_prior_layout_from_its_table():
    mobilenet = config_for("VOC", backbone="mobilenet_v3", basenet="none")
    assert mobilenet.model.prior_layout == table_layout(("ssdlite", 320))
    assert mobilenet.replace(backbone="efficientnet_lite0").model.prior_layout == \
        table_layout(("ssdlite-stride8", 320))
