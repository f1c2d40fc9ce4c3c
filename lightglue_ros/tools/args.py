"""Argument types shared by the command-line tools (one home, so the tools do not import each other)."""
import argparse

# = matching.backends.PRECISIONS, kept here so --help imports no torch (test_cli checks they agree).
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def positive_int(text: str) -> int:
    """Parse an integer > 0 (an argparse type), or fail with a one-line error."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v
