"""CPU smoke tests of train.py on the built-in shapes set (SSD300 at real shapes, tiny schedules)."""
import json
import os
import subprocess
import sys

import pytest
import torch
from helpers import on_loss_call

import train
from engine import Trainer
from layers import MultiBoxLoss
from models.weights import read_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--dataset", "shapes", "--batch-size", "1", "--workers", "0", "--no-batch-norm", "--warmup-iters", "0",
        "--lr", "3.2e-2", "--eval-every", "0", "--no-final-eval", "--no-tensorboard", "--log-every", "1",
        "--checkpoint-every", "0"]


def losses(folder):
    rows = [json.loads(line) for line in open(os.path.join(folder, "metrics.jsonl"))]
    return [r["loss"] for r in rows if r["kind"] == "train"]


def test_loss_decreases_and_files_are_written(tmp_path):
    folder = str(tmp_path / "run")
    code = train.main(TINY + ["--shapes-train-images", "2", "--no-augment", "--max-iter", "10",
                              "--output", folder])
    assert code == 0
    history = losses(folder)
    assert len(history) == 10
    assert sum(history[-3:]) / 3 < 0.7 * sum(history[:2]) / 2, history
    for name in ("final.pth", "ckpt_0000010.pth", "loss_curve.png", "metrics.jsonl"):
        assert os.path.isfile(os.path.join(folder, name)), name
    final = read_state(os.path.join(folder, "final.pth"))
    assert final["config"]["dataset"] == "shapes" and final["iteration"] == 10


def test_resume_is_exact(tmp_path):
    common = TINY + ["--shapes-train-images", "8", "--lr", "0.32"]
    assert train.main(common + ["--max-iter", "3", "--output", str(tmp_path / "once")]) == 0
    assert train.main(common + ["--max-iter", "2", "--output", str(tmp_path / "twice")]) == 0
    checkpoint = str(tmp_path / "twice" / "ckpt_0000002.pth")
    assert train.main(common + ["--max-iter", "3", "--output", str(tmp_path / "twice"),
                                "--resume", checkpoint]) == 0
    one = read_state(str(tmp_path / "once" / "final.pth"))["model"]
    two = read_state(str(tmp_path / "twice" / "final.pth"))["model"]
    assert one.keys() == two.keys()
    assert all(torch.equal(one[k], two[k]) for k in one)
    # a checkpoint from another model config is refused
    assert train.main(common + ["--max-iter", "4", "--size", "512", "--resume", checkpoint,
                                "--output", str(tmp_path / "other")]) == 2


def test_nan_loss_is_skipped_then_stops(tmp_path, monkeypatch):
    original = MultiBoxLoss.forward
    calls = {"n": 0}

    def sometimes_nan(self, predictions, targets):
        calls["n"] += 1
        terms = original(self, predictions, targets)
        return dict(terms, loss_l=terms["loss_l"] * float("nan")) if calls["n"] in bad else terms

    monkeypatch.setattr(MultiBoxLoss, "forward", sometimes_nan)
    bad = {2}
    folder = str(tmp_path / "one_nan")
    assert train.main(TINY + ["--shapes-train-images", "4", "--max-iter", "3", "--output", folder]) == 0
    assert len(losses(folder)) == 3
    calls["n"], bad = 0, {1, 2, 3}
    folder = str(tmp_path / "all_nan")
    code = train.main(TINY + ["--shapes-train-images", "4", "--max-iter", "5", "--max-bad-steps", "2",
                              "--output", folder])
    assert code == 4
    assert os.listdir(folder) and any(name.startswith("ckpt_") for name in os.listdir(folder))


def make_trainer(tmp_path, *extra):
    args = train.parse_args(TINY + ["--shapes-train-images", "4", "--max-iter", "2", "--output",
                                     str(tmp_path)] + list(extra))
    device = torch.device(args.device or "cpu")
    cfg, *_ = train.prepare(args, 0, 1, device)
    return Trainer(cfg, 0, 1, device)


def test_skipped_step_changes_nothing_even_as_the_first_step(tmp_path):
    torch.manual_seed(0)
    images = torch.randint(0, 255, (1, 3, 300, 300), dtype=torch.uint8)
    targets = torch.tensor([[[0.1, 0.2, 0.5, 0.6, 1.0]]])
    poisoned = targets.clone()
    poisoned[0, 0, 2] = float("nan")  # NaN box -> NaN regression target -> NaN loss

    skipped_first = make_trainer(tmp_path / "a")
    before = {k: v.clone() for k, v in skipped_first.model.state_dict().items()}
    _, finite = skipped_first.step(images, poisoned)
    assert not finite and skipped_first.iteration == 1
    after = skipped_first.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(not s["momentum_buffer"].any() for s in skipped_first.optimizer.state.values())
    skipped_first.step(images, targets)

    plain = make_trainer(tmp_path / "b")
    plain.step(images, targets)
    one, two = skipped_first.model.state_dict(), plain.model.state_dict()
    assert all(torch.equal(one[k], two[k]) for k in before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_step_never_waits_for_the_gpu(tmp_path):
    trainer = make_trainer(tmp_path, "--device", "cuda", "--amp", "bf16", "--batch-size", "4")
    images = torch.randint(0, 255, (4, 3, 300, 300), dtype=torch.uint8, device="cuda")
    targets = torch.tensor([[[0.1, 0.2, 0.5, 0.6, 1.0], [0, 0, 0, 0, -1]]] * 4, device="cuda")
    trainer.step(images, targets)  # warm-up: cuDNN autotuning may synchronise
    torch.cuda.set_sync_debug_mode("error")
    try:
        trainer.step(images, targets)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_missing_basenet_is_a_clear_error(tmp_path, capsys):
    code = train.main(["--dataset", "shapes", "--basenet", str(tmp_path / "vgg.pth"), "--max-iter", "1",
                       "--output", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "vgg.pth: base network weights not found" in err and "scripts/get_weights.sh" in err


def test_two_process_gloo_training_keeps_ranks_in_sync(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29531",
           os.path.join(ROOT, "train.py")] + TINY + ["--device", "cpu", "--shapes-train-images", "8",
                                                     "--max-iter", "2", "--output", str(tmp_path)]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ranks in sync: True" in result.stderr
    assert os.path.isfile(tmp_path / "final.pth")


def test_ctrl_c_saves_a_checkpoint_that_resumes(tmp_path, monkeypatch):
    original = MultiBoxLoss.forward

    def interrupt():
        raise KeyboardInterrupt

    on_loss_call(monkeypatch, 2, interrupt)
    folder = str(tmp_path / "run")
    assert train.main(TINY + ["--shapes-train-images", "4", "--max-iter", "3", "--output", folder]) == 130
    assert read_state(os.path.join(folder, "ckpt_0000001.pth"))["iteration"] == 1
    monkeypatch.setattr(MultiBoxLoss, "forward", original)
    assert train.main(TINY + ["--shapes-train-images", "4", "--max-iter", "2", "--output", folder,
                              "--resume", "auto"]) == 0
    assert read_state(os.path.join(folder, "final.pth"))["iteration"] == 2


BCCD = os.path.join(ROOT, "..", "shared", "data", "bccd")


@pytest.mark.skipif(not os.path.isdir(BCCD), reason="../shared/data/bccd absent")
def test_one_step_on_real_voc_folder_with_its_own_class_names(tmp_path):
    folder = str(tmp_path / "bccd")
    assert train.main(["--dataset", "VOC", "--dataset-root", BCCD, "--sets", "train", "--test-sets", "test",
                       "--class-names", "RBC", "WBC", "Platelets", "--backbone", "vgg16", "--basenet", "none",
                       "--batch-size", "1",
                       "--workers", "0", "--no-batch-norm", "--max-iter", "1", "--eval-every", "0",
                       "--no-final-eval", "--no-tensorboard", "--checkpoint-every", "0",
                       "--output", folder]) == 0
    saved = read_state(os.path.join(folder, "final.pth"))["config"]
    assert saved["class_names"] == ["RBC", "WBC", "Platelets"] and saved["pixel_format"] == "torchvision"


def test_one_step_on_a_coco_format_dataset_takes_its_classes(tmp_path):
    import cv2
    import numpy as np
    (tmp_path / "annotations").mkdir()
    (tmp_path / "train2017").mkdir()
    cv2.imwrite(str(tmp_path / "train2017" / "1.jpg"), np.full((200, 240, 3), 127, np.uint8))
    doc = {"images": [{"id": 1, "file_name": "1.jpg", "width": 240, "height": 200}],
           "categories": [{"id": 5, "name": "kite"}, {"id": 9, "name": "boat"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 9, "bbox": [20, 30, 100, 80], "area": 8000,
                            "iscrowd": 0}]}
    (tmp_path / "annotations" / "instances_train2017.json").write_text(json.dumps(doc))
    folder = str(tmp_path / "run")
    assert train.main(["--dataset", "COCO", "--dataset-root", str(tmp_path), "--sets", "train2017",
                       "--basenet", "none", "--batch-size", "1", "--workers", "0", "--no-batch-norm",
                       "--max-iter", "1", "--eval-every", "0", "--no-final-eval", "--no-tensorboard",
                       "--checkpoint-every", "0", "--output", folder]) == 0
    # the category without annotations (an export's placeholder) is left out
    assert read_state(os.path.join(folder, "final.pth"))["config"]["class_names"] == ["boat"]


def test_no_stale_evaluation_beside_a_newer_final(tmp_path):
    folder = str(tmp_path / "run")
    common = TINY + ["--shapes-train-images", "2", "--shapes-test-images", "2", "--output", folder]
    assert train.main([a for a in common if a != "--no-final-eval"] + ["--max-iter", "2"]) == 0
    metrics = os.path.join(folder, "eval", "metrics.json")
    assert os.path.isfile(metrics)
    assert train.main(common + ["--max-iter", "3", "--resume", folder]) == 0  # --no-final-eval
    assert not os.path.exists(metrics) and read_state(os.path.join(folder, "final.pth"))["iteration"] == 3
