"""Test-session set-up that must happen before any test module imports anything, and the fixtures several test
files share."""
import os

import pytest
import torch

# Without a GPU, Triton kernels run in Triton's interpreter; it must be chosen before triton is first imported
# (its own library functions are bound to one mode at import), so here rather than in the kernel's test module.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="module")
def voc_run(tmp_path_factory):
    """A 1-iteration VOC-folder run whose checkpoint stores --eval-limit 1 (validation subset) and no final eval."""
    from helpers import FAST, cells_folder

    import train

    base = tmp_path_factory.mktemp("trained")
    root = cells_folder(base / "data")
    run = base / "run"
    assert train.main(["--dataset", "VOC", "--dataset-root", str(root), "--sets", "train", "--test-sets", "test",
                       "--class-names", "cell", "dot", "--eval-limit", "1", "--no-final-eval", "--output", str(run)]
                      + FAST) == 0
    return root, run
