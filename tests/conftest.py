"""Test-session set-up that must happen before any test module imports anything."""
import os

import torch

# Without a GPU, Triton kernels run in Triton's interpreter; it must be chosen before triton is first imported
# (its own library functions are bound to one mode at import), so here rather than in the kernel's test module.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
