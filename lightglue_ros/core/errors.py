"""One root for the package's own errors: a mistake in the input or the set-up, said in one clear line.

Every error the package raises on purpose derives from `LightGlueRosError` (and, where callers expect it, from the
matching built-in: a bad configuration is also a `ValueError`). Anything else escaping is a bug and keeps its
traceback. The command-line tools print a `LightGlueRosError` as ``error: ...`` and exit with code 2.
"""


class LightGlueRosError(Exception):
    """Root of the package's errors; the message names what is wrong and, where there is one, the fix."""


class UserError(LightGlueRosError):
    """A mistake in the command line or the inputs (a missing file, an impossible setting)."""
