"""Ctrl-C (SIGINT) and SIGTERM in training. A signal that arrives inside an SGD step is held until the step
completes, so the checkpoint written on it is exactly the state after the last completed step (weights, BatchNorm
statistics, optimizer, scheduler, RNG) and the resumed run continues bit-exactly. A second signal inside the same
step stops at once without saving (the newest checkpoint on disk stays as it was)."""
import os
import signal
import sys
import threading
from contextlib import contextmanager


def quiet_while_starting(script: str):
    """Ctrl-C while an entry script's libraries load (torch takes seconds) is one line, not a traceback through the
    import machinery; `started()` hands SIGINT back to Python once the script can handle it."""
    if __import__("__main__").__dict__.get("__file__", "").endswith(script) and \
            threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, lambda signum, frame: (
            sys.stderr.write(f"interrupted while {script} was starting: nothing done\n"), os._exit(130)))


def started():
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


class Terminated(Exception):
    """SIGTERM (what cluster schedulers send before killing a job): saves a checkpoint like Ctrl-C."""


class StepAbandoned(Exception):
    """A second signal inside one step: the state is partway through the step and must not be saved."""


class Interrupts:
    def __init__(self):
        self.inside_step = False
        self.held = None
        self.previous = {}

    def install(self):
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread (e.g. train.main called from a thread)
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self._handle)

    def restore(self):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous, self.inside_step, self.held = {}, False, None

    def _handle(self, signum, frame):
        stop = KeyboardInterrupt if signum == signal.SIGINT else Terminated
        if not self.inside_step:
            raise stop()
        if self.held is not None:
            raise StepAbandoned()
        self.held = stop
        sys.stderr.write("\nfinishing the current step, then saving a checkpoint (signal again to stop without "
                         "saving)\n")

    @contextmanager
    def step(self):
        """The body is one SGD step: a signal inside it is raised when it completes."""
        self.inside_step = True
        try:
            yield
        finally:
            self.inside_step = False
        if self.held is not None:
            stop, self.held = self.held, None
            raise stop()


INTERRUPTS = Interrupts()
