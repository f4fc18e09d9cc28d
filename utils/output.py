"""Output paths checked before any work: a folder (created when missing) or a file whose folder can be written.
Each problem is one OutputError naming the flag, the path and the reason."""
import os
import tempfile

from utils.errors import UserError


class OutputError(UserError):
    """An output path that cannot be used; the message names the flag and the path."""


def _writable_folder(folder: str, flag: str, path: str, create: bool = True):
    """Probe with a temporary file; without `create`, in the nearest folder that exists (nothing is left behind)."""
    try:
        if create:
            os.makedirs(folder, exist_ok=True)
        else:
            while not os.path.exists(folder):
                folder = os.path.dirname(os.path.abspath(folder))
            if not os.path.isdir(folder):
                raise NotADirectoryError
        with tempfile.TemporaryFile(dir=folder):
            pass
    except FileExistsError:
        raise OutputError(f"{flag} {path}: {folder} is a file, not a folder") from None
    except NotADirectoryError:
        raise OutputError(f"{flag} {path}: a part of it is a file, not a folder") from None
    except OSError as exc:
        raise OutputError(f"{flag} {path}: cannot write there ({exc.strerror})") from None


def check_output_folder(path: str, flag: str = "--output", create: bool = True) -> str:
    """Make sure files can be written in the folder `path`, creating it (or, without `create`, checking that it
    could be created: a run that then stops on bad data leaves no empty folder)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(f"{flag} {path}: is a file, not a folder")
    _writable_folder(path, flag, path, create)
    return path


def check_output_file(path: str, flag: str) -> str:
    """A file to write at the end: not a folder, and its folder (created if needed) writable."""
    if os.path.isdir(path):
        raise OutputError(f"{flag} {path}: is a folder; give a file name")
    _writable_folder(os.path.dirname(os.path.abspath(path)), flag, path)
    return path
