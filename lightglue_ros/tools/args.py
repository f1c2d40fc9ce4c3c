"""Argument types shared by the command-line tools (one home, so the tools do not import each other)."""
import argparse


def positive_int(text: str) -> int:
    """argparse type: an integer > 0, or a one-line error."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v
