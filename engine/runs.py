"""A run folder (runs/<dataset>-<size>-<date-time>, or --output): its name, its checkpoints, and which run
--resume continues."""
import glob
import os
from datetime import datetime

from config import Config
from utils.checkpoint import WeightsError, damaged_member, latest_checkpoint, read_state
from utils.errors import ConfigError

RUNS_ROOT = "runs"


def default_output(cfg: Config) -> str:
    return os.path.join(RUNS_ROOT, f"{cfg.data.dataset.lower()}-{cfg.model.size}-{datetime.now():%Y%m%d-%H%M%S}")


def final_eval_missing(cfg: Config) -> bool:
    """Whether the run in cfg.run.output should end with an evaluation that did not complete (eval/metrics.json is
    written last)."""
    return cfg.run.final_eval and not os.path.isfile(os.path.join(cfg.run.output, "eval", "metrics.json"))


def find_resume(resume: str, output: str = None):
    """--resume auto|FOLDER|FILE -> a checkpoint path, or None for 'auto' with nothing to continue. 'auto': the
    run (in `output`, else under runs/) whose newest training checkpoint is the most recent among the unfinished
    ones (not at its --max-iter, or its final evaluation missing); when every run is finished, the newest."""
    if resume == "auto":
        folders = [output] if output else ([os.path.join(RUNS_ROOT, d) for d in os.listdir(RUNS_ROOT)]
                                           if os.path.isdir(RUNS_ROOT) else [])
        found = [path for path in map(run_checkpoint, folders) if path]
        found.sort(key=os.path.getmtime, reverse=True)
        unfinished = [path for path in found if not run_finished(os.path.dirname(path))]
        return (unfinished or found or [None])[0]
    if os.path.isdir(resume):
        found = run_checkpoint(resume)
        if found is None:
            raise WeightsError(f"{resume}: no ckpt_*.pth or final.pth in this folder: the run stopped before its "
                               f"first checkpoint, so there is nothing to resume; remove the folder (rm -r {resume}) "
                               f"and start again, or choose another --output")
        return found
    return resume


def run_checkpoint(folder: str):
    """A run folder's newest full checkpoint, else its final.pth, else None."""
    found = latest_checkpoint(folder)
    if found is None and os.path.isfile(os.path.join(folder, "final.pth")):
        found = os.path.join(folder, "final.pth")
    return found


def read_resume(path: str) -> dict:
    """The checkpoint to resume from; a damaged one names the run's newest intact checkpoint, where there is one."""
    try:
        return read_state(path)
    except WeightsError as exc:
        folder = os.path.dirname(os.path.abspath(path))
        others = sorted(glob.glob(os.path.join(glob.escape(folder), "ckpt_*.pth")), reverse=True)
        intact = next((p for p in others if os.path.abspath(p) != os.path.abspath(path) and not damaged_member(p)),
                      None)
        if intact is None or "corrupt" not in str(exc):
            raise
        raise WeightsError(f"{exc}; the run's older checkpoint {intact} is intact: --resume {intact} continues "
                           f"from it") from None


def run_finished(folder: str) -> bool:
    """final.pth written and, when the run evaluates at the end, its evaluation complete."""
    final = os.path.join(folder, "final.pth")
    if not os.path.isfile(final):
        return False
    if os.path.isfile(os.path.join(folder, "eval", "metrics.json")):
        return True
    return not read_state(final).get("config", {}).get("final_eval", True)


def check_fresh_folder(folder: str):
    """A new run never writes into another run's folder."""
    if os.path.isdir(folder) and any(name.startswith("ckpt_") or name in ("final.pth", "metrics.jsonl")
                                     for name in os.listdir(folder)):
        if run_checkpoint(folder) is None:
            raise ConfigError(f"--output {folder}: holds a run that stopped before its first checkpoint (nothing to "
                              f"resume); remove it (rm -r {folder}) or choose another --output")
        raise ConfigError(f"--output {folder}: holds another run; continue it with --resume {folder}, or choose "
                          f"another --output")
