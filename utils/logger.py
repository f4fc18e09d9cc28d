"""Training logs: a JSON-lines metrics file, tensorboard scalars, optional visdom, and a loss-curve PNG."""
import json
import logging
import os

from utils.checkpoint import atomic_path

log = logging.getLogger("ssd")


def last_training_rate(folder: str) -> float:
    """The img/s of the last training row of `folder`/metrics.jsonl (what the progress bar showed last)."""
    with open(os.path.join(folder, "metrics.jsonl")) as f:
        return [json.loads(line)["img_s"] for line in f if '"img_s"' in line][-1]


class MetricsLogger:
    def __init__(self, folder: str, tensorboard: bool = True, visdom: bool = False, start_iteration: int = 0):
        """`start_iteration`: where a resumed run continues; rows logged after it by the stopped run (which went
        on past its last checkpoint) are dropped, so the log reads each iteration once."""
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, "metrics.jsonl")
        self.folder = folder
        dropped = self.keep_rows_up_to(start_iteration)
        if dropped:
            log.info("metrics.jsonl: removed %d rows logged after iteration %d (past the checkpoint this run "
                     "resumes from) or cut short", dropped, start_iteration)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(os.path.join(folder, "tensorboard"),
                                            purge_step=start_iteration + 1 if start_iteration else None)
            except ImportError as exc:
                log.warning("tensorboard logging off: %s", exc)
        self.viz = None
        if visdom:
            self.viz = self._connect_visdom()

    def keep_rows_up_to(self, iteration: int) -> int:
        """Drop the rows of metrics.jsonl after `iteration` (atomically); -> how many."""
        if not os.path.isfile(self.path):
            return 0
        with open(self.path) as f:
            lines = [line for line in f if line.strip()]
        kept = []
        for line in lines:
            try:
                if json.loads(line)["iteration"] <= iteration:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):  # a line cut short by a kill mid-write
                pass
        if len(kept) < len(lines):
            with atomic_path(self.path) as temporary, open(temporary, "w") as f:
                f.writelines(kept)
        return len(lines) - len(kept)

    def logged(self, iteration: int, kind: str) -> bool:
        """Whether metrics.jsonl holds a `kind` row of `iteration`."""
        if not os.path.isfile(self.path):
            return False
        with open(self.path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        return any(r["kind"] == kind and r["iteration"] == iteration for r in rows)

    @staticmethod
    def _connect_visdom():
        try:
            import visdom
            viz = visdom.Visdom(raise_exceptions=True)
            if viz.check_connection(timeout_seconds=2):
                return viz
        except Exception:  # visdom raises many kinds when no server runs
            pass
        log.warning("visdom: no server at localhost:8097 (start one with `python -m visdom.server`); "
                    "visdom logging off")
        return None

    def log(self, iteration: int, values: dict, kind: str = "train"):
        with open(self.path, "a") as f:
            f.write(json.dumps({"kind": kind, "iteration": iteration, **values}) + "\n")
        for key, value in values.items():
            if isinstance(value, (int, float)):
                if self.writer:
                    self.writer.add_scalar(f"{kind}/{key}", value, iteration)
                if self.viz:
                    try:
                        self.viz.line(X=[iteration], Y=[value], win=f"{kind}/{key}", update="append",
                                      opts=dict(title=f"{kind}/{key}"))
                    except Exception:
                        log.warning("visdom: lost the server; visdom logging off")
                        self.viz = None

    def close(self):
        if self.writer:
            self.writer.close()

    def plot_losses(self, path: str = None) -> str:
        """Loss curves (and validation mAP, if any) from metrics.jsonl as a PNG."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = [json.loads(line) for line in open(self.path)] if os.path.isfile(self.path) else []
        train = [r for r in rows if r["kind"] == "train"]
        evals = [r for r in rows if r["kind"] == "eval" and r.get("mAP") is not None]
        fig, axes = plt.subplots(1, 2 if evals else 1, figsize=(11 if evals else 6, 4), squeeze=False)
        for key in dict.fromkeys(k for r in train for k in r if k.startswith("loss")):  # the sum, then each term
            logged = [r for r in train if key in r]
            axes[0, 0].plot([r["iteration"] for r in logged], [r[key] for r in logged], label=key)
        axes[0, 0].set_xlabel("iteration")
        axes[0, 0].set_title("training loss")
        axes[0, 0].legend()
        if evals:
            axes[0, 1].plot([r["iteration"] for r in evals], [r["mAP"] for r in evals], marker="o")
            axes[0, 1].set_xlabel("iteration")
            axes[0, 1].set_title("validation mAP")
        fig.tight_layout()
        path = path or os.path.join(self.folder, "loss_curve.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path
