"""Every Python block of README.md and docs/*.md runs as written, with only the paths it names (and the schedule
of the training example) replaced by data this test writes."""
import glob
import os
import re

import cv2
import numpy as np
import pytest
import torch
from helpers import make_voc_folder

from config_resolve import config_for
from models import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def python_blocks() -> list:
    blocks = []
    for page in PAGES:
        text = open(page).read()
        for k, block in enumerate(re.findall(r"```python\n(.*?)```", text, flags=re.S)):
            blocks.append(pytest.param(block, id=f"{os.path.basename(page)}-{k + 1}"))
    return blocks


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """What the README's paths stand for: a run's final.pth (VOC SSD300), a photo, a VOC-style folder of cells."""
    folder = tmp_path_factory.mktemp("readme")
    cfg = config_for("VOC")
    weights = folder / "runs" / "my-run" / "final.pth"
    weights.parent.mkdir(parents=True)
    torch.save({"config": cfg.to_dict(), "model": build_model(cfg).state_dict(), "iteration": 1}, weights)
    photo = folder / "photo.jpg"
    cv2.imwrite(str(photo), np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8))
    cells = {f"c{i}": ([("RBC", 20 + 10 * i, 30, 90 + 10 * i, 100), ("WBC", 150, 60, 260, 170),
                        ("Platelets", 40, 150, 70, 180)], 320, 240) for i in range(4)}
    make_voc_folder(folder / "bccd", cells, {"trainval": ["c0", "c1", "c2"], "test": ["c3"]})
    return {"runs/my-run/final.pth": str(weights), "photo.jpg": str(photo), "~/data/bccd": str(folder / "bccd"),
            '"batch_size": 16': '"batch_size": 2, "workers": 0, "tensorboard": False, '
                                f'"test_sets": ["test"], "output": "{folder / "train-run"}"',
            '"max_iter": 1000': '"max_iter": 2'}


@pytest.mark.parametrize("block", python_blocks())
def test_readme_python_block_runs(block, stand_ins, monkeypatch):
    code = block
    for path, replacement in stand_ins.items():
        code = code.replace(path, replacement)
    monkeypatch.chdir(ROOT)
    exec(compile(code, "<README block>", "exec"), {"__name__": "__readme__"})


def test_every_stand_in_is_still_named_by_a_block(stand_ins):
    """A README edit that renames a path must update this test's stand-ins (or the block runs on nothing)."""
    text = "".join(b.values[0] for b in python_blocks())
    assert [path for path in stand_ins if path not in text] == []
