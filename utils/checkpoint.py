"""One checkpoint format: {"config", "model", "optimizer", "scheduler", "scaler", "iteration", "rng", "best_map"},
written atomically (temp file + rename), read with weights_only=True."""
import glob
import os
import random

import numpy as np
import torch

from models.weights import WeightsError, read_state

MODEL_KEYS = ("size", "batch_norm", "labels", "dataset", "pixel_format")


def atomic_save(obj, path: str):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def rng_state() -> dict:
    version, state, gauss = random.getstate()
    np_state = np.random.get_state()
    return {"python": [version, list(state), gauss],
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict):
    version, values, gauss = state["python"]
    random.setstate((version, tuple(values), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(folder: str, state: dict, keep: int) -> str:
    """Write `ckpt_<iteration>.pth`, keep the newest `keep`; returns the path."""
    path = os.path.join(folder, f"ckpt_{state['iteration']:07d}.pth")
    atomic_save(state, path)
    for old in sorted(glob.glob(os.path.join(folder, "ckpt_*.pth")))[:-keep]:
        os.remove(old)
    return path


def latest_checkpoint(folder: str):
    found = sorted(glob.glob(os.path.join(folder, "ckpt_*.pth")))
    return found[-1] if found else None


def load_checkpoint(path: str) -> dict:
    state = read_state(path)
    if "model" not in state or "config" not in state:
        raise WeightsError(f"{path}: not a train.py checkpoint (no 'model'/'config'); use --weights or --basenet")
    return state


def check_compatible(path: str, saved: dict, cfg) -> None:
    """A checkpoint from another model config is a clear error."""
    current = cfg.to_dict()
    different = [f"{k}: checkpoint {saved.get(k)!r}, now {current[k]!r}" for k in MODEL_KEYS
                 if k in saved and saved.get(k) != current[k]]
    if different:
        raise WeightsError(f"{path}: checkpoint is from another model config ({'; '.join(different)})")
