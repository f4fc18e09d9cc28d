"""What a new user meets after the tests pass: one flag vocabulary, ssd.pytorch's spellings, one-line errors,
run folders that never mix, resume that restores a run, SIGTERM. Every row of README's bad-input table."""
import os
import signal

import pytest
import torch
from helpers import on_loss_call

import detect as detect_script
import eval as eval_script
import train
from config import CPU_CHECK, Config, ConfigError, config_for, resolve
from models import SSD
from scripts import export_onnx
from utils.checkpoint import read_state

TINY = ["--dataset", "shapes", "--shapes-train-images", "4", "--shapes-test-images", "2", "--batch-size", "2",
        "--workers", "0", "--eval-every", "0", "--no-tensorboard", "--checkpoint-every", "0", "--log-every", "1"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A 300 and a 512 checkpoint (weights + config, untrained), and a corrupt copy."""
    folder = tmp_path_factory.mktemp("weights")
    paths = {}
    for size in (300, 512):
        cfg = config_for("shapes", size=size, batch_norm=False)
        path = folder / f"ssd{size}" / "final.pth"
        path.parent.mkdir()
        torch.save({"config": cfg.to_dict(), "model": SSD(size, cfg.num_classes).state_dict()}, path)
        paths[size] = str(path)
    data = open(paths[300], "rb").read()
    (folder / "corrupt.pth").write_bytes(data[: len(data) // 3])
    paths["corrupt"] = str(folder / "corrupt.pth")
    return paths


def one_line_error(capsys, code, expected, status=2):
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == status, err
    assert len(errors) == 1 and expected in errors[0], err
    assert "Traceback" not in err and "weights_only=False" not in err and "usage:" not in err
    return errors[0]


# (script, arguments, expected text in the one error line)
BAD_INPUTS = [
    (train.main, ["--batch-size", "0"], "--batch-size must be a whole number >= 1 (got 0)"),
    (train.main, ["--max-iter", "-5"], "--max-iter must be a whole number >= 1 (got -5)"),
    (train.main, ["--lr", "0"], "--lr must be > 0"),
    (eval_script.main, ["--weights", "{w300}", "--nms-thresh", "1.5"], "--nms-thresh must be between 0 and 1"),
    (train.main, ["--device", "gpu"], "--device gpu: unknown device; use auto, cpu, cuda or cuda:N"),
    (train.main, ["--dataset", "shapes", "--dataset-root", "/data/x"], "--dataset-root: the built-in shapes"),
    (train.main, ["--batch-size", "1", "--max-iter", "1"], "--batch-size 1 with the BatchNorm variant"),
    (train.main, ["--labels", "a", "a", "--dataset", "VOC"], "--labels: a class name is repeated"),
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
    saved = config_for("VOC", lr=5e-3, size=512, labels=["a", "b"]).to_dict()
    saved["conf_thresh"] = 0.2  # an older checkpoint's name for score_thresh
    cfg = resolve({"lr": 2e-3}, saved, preset={"max_iter": 7})
    assert cfg.lr == 2e-3 and cfg.size == 512 and cfg.labels == ("a", "b") and cfg.score_thresh == 0.2
    assert cfg.max_iter == 120000  # the checkpoint's value beats the preset
    other = resolve({"dataset": "shapes"}, saved)  # another dataset: only the network settings carry over
    assert other.size == 512 and other.lr == config_for("shapes").lr
    with pytest.raises(AttributeError):  # dataclasses.FrozenInstanceError
        cfg.lr = 1.0
    assert resolve(preset=CPU_CHECK, default_dataset="shapes").batch_size == CPU_CHECK["batch_size"]
    with pytest.raises(ConfigError, match="--workers must be a whole number >= 0"):
        resolve({"workers": -1})
    assert Config.from_dict({"save_folder": "old", "unknown_key": 1}).output == "old"


def test_the_lr_is_scaled_with_the_batch():
    cfg = config_for("shapes")
    assert cfg.lr_for(32) == pytest.approx(1e-2) and cfg.lr_for(4) == pytest.approx(1.25e-3)


def test_runs_do_not_mix_and_resume_restores_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert train.main(TINY + ["--dataset", "shapes", "--max-iter", "2", "--no-final-eval"]) == 0
    (run,) = os.listdir("runs")
    assert run.startswith("shapes-300-")
    folder = os.path.join("runs", run)
    capsys.readouterr()
    code = train.main(TINY + ["--max-iter", "2", "--output", folder])
    line = one_line_error(capsys, code, f"--output {folder}: holds another run; continue it with --resume")
    assert line
    # --resume auto finds the newest run, keeps its --no-final-eval and its dataset; flags given again win
    assert train.main(["--resume", "auto", "--max-iter", "3", "--workers", "0"]) == 0
    state = read_state(os.path.join(folder, "final.pth"))
    assert state["iteration"] == 3 and state["config"]["final_eval"] is False
    assert state["config"]["shapes_train_images"] == 4 and state["config"]["max_iter"] == 3
    assert not os.path.isdir(os.path.join(folder, "eval"))
    capsys.readouterr()
    code = train.main(["--resume", "auto", "--workers", "0"])  # a finished run is not trained or evaluated again
    err = capsys.readouterr().err
    assert code == 2 and "(finished: every run is; a larger --max-iter trains it further)" in err
    assert "the run already reached iteration 3 of --max-iter 3; pass a larger --max-iter" in err


def test_a_run_stopped_before_its_first_checkpoint_names_what_works(tmp_path, capsys):
    folder = tmp_path / "dead"
    folder.mkdir()
    (folder / "metrics.jsonl").write_text("")
    code = train.main(TINY + ["--max-iter", "2", "--output", str(folder)])
    one_line_error(capsys, code, f"--output {folder}: holds a run that stopped before its first checkpoint "
                                 f"(nothing to resume); remove it")
    code = train.main(TINY + ["--max-iter", "2", "--resume", str(folder)])
    one_line_error(capsys, code, "the run stopped before its first checkpoint, so there is nothing to resume")


def test_sigterm_saves_a_checkpoint(tmp_path, monkeypatch):
    on_loss_call(monkeypatch, 2, lambda: os.kill(os.getpid(), signal.SIGTERM))
    folder = str(tmp_path / "run")
    assert train.main(TINY + ["--max-iter", "5", "--output", folder, "--no-final-eval"]) == 143
    saved = [name for name in os.listdir(folder) if name.startswith("ckpt_")]
    assert saved and read_state(os.path.join(folder, saved[0]))["iteration"] >= 1


def test_cpu_check_is_what_the_main_command_runs_on_a_cpu(monkeypatch):
    args = train.parse_args([])
    cfg, resume, state, cpu_check = train.prepare(args, 0, 1, torch.device("cpu"))
    assert cpu_check and cfg.max_iter == CPU_CHECK["max_iter"] and cfg.batch_size == CPU_CHECK["batch_size"]
    args = train.parse_args(["--max-iter", "100"])
    cfg, _, _, cpu_check = train.prepare(args, 0, 1, torch.device("cpu"))
    assert not cpu_check and cfg.max_iter == 100 and cfg.batch_size == 32
    args = train.parse_args([])
    cfg, _, _, cpu_check = train.prepare(args, 0, 1, torch.device("cuda"))
    assert not cpu_check and cfg.max_iter == 6000
