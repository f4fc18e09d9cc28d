"""The parser every entry script uses (one-line errors, ssd.pytorch's spellings read as ours) and the one handler
of the errors that are the user's to fix. The flags themselves are config_flags.py's."""
import argparse
import functools
import sys
from collections import Counter

from utils.errors import UserError

# ssd.pytorch's spellings and our earlier ones, read as ours (any other --a_b is read as --a-b when that is one of
# ours).
SSD_PYTORCH_FLAGS = {"--voc_root": "--dataset-root", "--trained_model": "--weights", "--save_folder": "--output",
                     "--visual_threshold": "--score-thresh", "--confidence_threshold": "--score-thresh",
                     "--num_workers": "--workers", "--conf-thresh": "--score-thresh", "--save-folder": "--output",
                     "--labels": "--class-names"}
TRUE_WORDS = ("true", "yes", "1", "t", "y")
FALSE_WORDS = ("false", "no", "0", "f", "n")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) and ssd.pytorch's flag spellings read as ours."""

    def __init__(self, doc: str, aliases: dict = None):
        super().__init__(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        self.aliases = dict(SSD_PYTORCH_FLAGS, **(aliases or {}))

    def error(self, message):
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)

    def translate(self, argv: list) -> list:
        out, notes = [], []
        known = set(self._option_string_actions)
        argv = list(argv)
        while argv:
            arg = argv.pop(0)
            name, eq, value = arg.partition("=")
            action = self._option_string_actions.get(name)
            boolean = name == "--cuda" or isinstance(action, argparse.BooleanOptionalAction)
            if boolean and (eq or (argv and argv[0].lower() in TRUE_WORDS + FALSE_WORDS)):
                text = value if eq else argv.pop(0)  # ssd.pytorch's str2bool style: --visdom True
                on = text.lower() in TRUE_WORDS
                new = ["--device", "cuda" if on else "cpu"] if name == "--cuda" else \
                    [name if on else "--no-" + name[2:]]
                notes.append(f"{name} {text} read as {' '.join(new)}")
                out += new
                continue
            if not name.startswith("--") or name in known:
                out.append(arg)
                continue
            if name == "--cuda":
                notes.append("--cuda read as --device cuda")
                out += ["--device", "cuda"]
                continue
            if name == "--start_iter":
                self.error("--start_iter: not needed; --resume restores the iteration from the checkpoint")
            new = self.aliases.get(name) or name.replace("_", "-")
            if new in known:
                notes.append(f"{name} read as {new}")
                out.append(new + eq + value)
            else:
                out.append(arg)
        out = self.match_choice_case(out, notes)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        return out

    def match_choice_case(self, argv: list, notes: list) -> list:
        """`--dataset voc` -> `--dataset VOC` (with a note): a choice typed in another case, where only one fits."""
        out = list(argv)
        for i, arg in enumerate(out):
            name, eq, value = arg.partition("=")
            action = self._option_string_actions.get(name)
            if action is None or not action.choices or not all(isinstance(c, str) for c in action.choices):
                continue
            where = i if eq else i + 1
            text = value if eq else (out[where] if where < len(out) else None)
            if text is None or text in action.choices:
                continue
            fits = [c for c in action.choices if c.lower() == text.lower()]
            if len(fits) == 1:
                out[where] = f"{name}={fits[0]}" if eq else fits[0]
                notes.append(f"{name} {text} read as {name} {fits[0]}")
        return out

    def parse_args(self, argv=None, namespace=None):
        argv = self.translate(sys.argv[1:] if argv is None else argv)
        given = Counter()
        for arg in argv:
            action = self._option_string_actions.get(arg.partition("=")[0])
            if action is not None and action.nargs in ("+", "*"):
                given[action.option_strings[0]] += 1
        for name, times in given.items():
            if times > 1:
                print(f"note: {name} given {times} times: the last one is used", file=sys.stderr)
        return super().parse_args(argv, namespace)


def add_device_flag(parser: argparse.ArgumentParser):
    """`--device`, the same for every script (not a Config key: a run's checkpoint does not fix its device)."""
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: auto = cuda when available)")


def entry_point(main):
    """An entry script's main(argv) -> exit status, with the one handler of the problems that are the user's to
    fix: a UserError anywhere inside is its message on stderr (`error: ...`) and exit status 2. Anything else is
    a bug and keeps its traceback."""
    @functools.wraps(main)
    def run(argv=None):
        try:
            return main(argv)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return run
