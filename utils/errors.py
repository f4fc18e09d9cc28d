"""The errors that are the user's to fix: one base class, caught once by every entry script."""


class UserError(Exception):
    """A problem that is the user's to fix (a flag, a file, the data, the disk), with a message of one line naming
    it. The entry scripts print it as `error: ...` and exit with status 2 (utils.cli.entry_point); any other
    exception is a bug and keeps its traceback."""


class ConfigError(UserError):
    """A setting that cannot be used; the message names the flag and says what to do."""
