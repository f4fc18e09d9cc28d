"""One checkpoint format: {"config", "model", "optimizer", "scheduler", "scaler", "iteration", "rng", "best_map"},
written atomically (temp file + rename), read with weights_only=True."""
import contextlib
import errno
import glob
import hashlib
import os
import pickle
import random
import shutil
import zipfile

import numpy as np
import torch

from utils.errors import UserError

from .output import OutputError

# A failed write with less free space than this on its disk is reported as a full disk.
LOW_DISK_BYTES = 256 * 2 ** 20


class WeightsError(UserError):
    """A weights file that cannot be used, with a message naming the file and the problem."""


def read_state(path: str) -> dict:
    """A weights file's contents, read with weights_only=True (tensors and plain containers only)."""
    path = os.path.expanduser(str(path))
    if os.path.isdir(path):
        raise WeightsError(f"{path}: is a folder, not a weights file")
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: no such weights file")
    damaged = damaged_member(path)
    if damaged:
        raise WeightsError(f"{path}: corrupt or truncated weights file ({damaged}); download or copy it again")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):
            raise WeightsError(f"{path}: holds Python objects besides tensors, which are not loaded for safety; "
                               f"save its state_dict() instead") from None
        raise WeightsError(f"{path}: corrupt or truncated weights file (download or copy it again)") from None
    except Exception:  # a truncated download, not a torch file at all
        raise WeightsError(f"{path}: corrupt or truncated weights file, or not a PyTorch file "
                           f"(download or copy it again)") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a dict of tensors, found {type(state).__name__}")
    return state


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def damaged_member(path: str) -> str:
    """torch.save's zip format stores a CRC-32 of every tensor's bytes, which torch.load does not check: a file
    damaged in place (its size kept) would load silently. -> what fails the check, '' for an intact file or
    another format (the legacy pickle format has no checksums)."""
    if not zipfile.is_zipfile(path):
        return ""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        return f"its zip structure is damaged: {exc}"
    return f"the stored checksum of {bad} does not match its bytes" if bad else ""


@contextlib.contextmanager
def atomic_path(path: str):
    """A temporary path beside `path` (`NAME.tmpPID`) for the block to write; renamed onto `path`, with the
    permissions a plain open() gives, when the block completes, removed when it fails. A reader of `path` never
    sees a half-written file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = f"{path}.tmp{os.getpid()}"
    try:
        yield temporary
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def atomic_save(obj, path: str):
    """torch.save through a temporary file; a full disk is an OutputError naming the folder (the file at `path`,
    if any, and every other file are left as they were)."""
    try:
        with atomic_path(path) as temporary:
            torch.save(obj, temporary)
    except (OSError, RuntimeError) as exc:  # torch's zip writer reports a failed write as a RuntimeError
        folder = os.path.dirname(os.path.abspath(path))
        free = shutil.disk_usage(folder).free if os.path.isdir(folder) else 0
        if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or free < LOW_DISK_BYTES:
            raise OutputError(f"{path}: not written, the disk of {folder} is full ({free / 2 ** 20:.0f} MB "
                              f"free)") from None
        if isinstance(exc, OSError):
            raise OutputError(f"{path}: not written ({exc.strerror or exc})") from None
        raise


def remove_dead_temp_files(folder: str) -> list:
    """Remove the `NAME.tmpPID` files atomic_save left when its process died mid-write (the PID no longer runs);
    -> their paths."""
    removed = []
    for path in glob.glob(os.path.join(glob.escape(folder), "*.tmp[0-9]*")):
        pid = path.rsplit(".tmp", 1)[1]
        if pid.isdigit() and not process_running(int(pid)):
            os.remove(path)
            removed.append(path)
    return removed


def process_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


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


def is_full_checkpoint(state: dict) -> bool:
    """A checkpoint that resumes exactly (optimizer, schedule and RNG states), not only weights + config."""
    return all(k in state for k in ("config", "model", "optimizer", "scheduler", "iteration", "rng"))
