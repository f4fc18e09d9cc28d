"""Output paths checked before any work: a folder (created when missing) or a file whose folder can be written.
Each problem is one OutputError naming the flag, the path and the reason."""
import os
import tempfile


class OutputError(ValueError):
    """An output path that cannot be used; the message names the flag and the path."""


def _writable_folder(folder: str, flag: str, path: str):
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except FileExistsError:
        raise OutputError(f"{flag} {path}: {folder} is a file, not a folder") from None
    except NotADirectoryError:
        raise OutputError(f"{flag} {path}: a part of it is a file, not a folder") from None
    except OSError as exc:
        raise OutputError(f"{flag} {path}: cannot write there ({exc.strerror})") from None


def check_output_folder(path: str, flag: str = "--output") -> str:
    """Create the folder `path` if needed and make sure files can be written in it."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(f"{flag} {path}: is a file, not a folder")
    _writable_folder(path, flag, path)
    return path


def check_output_file(path: str, flag: str) -> str:
    """A file to write at the end: not a folder, and its folder (created if needed) writable."""
    if os.path.isdir(path):
        raise OutputError(f"{flag} {path}: is a folder; give a file name")
    _writable_folder(os.path.dirname(os.path.abspath(path)), flag, path)
    return path
