"""Config fields that document themselves: the one source of each parameter's description, range and choices.

The core's configs (`FrontEndConfig`, `PoseConfig`, `OdometryConfig`) declare their fields with `param`, so the
ROS node's parameter table, `config/matcher.yaml` and the README's parameter table are all read from here (tests
compare the YAML and the README with it) instead of being written three times.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional, Tuple


@dataclass(frozen=True)
class FieldDoc:
    """What a config field means and which values are valid (inclusive numeric range, or a set of choices)."""

    doc: str
    lo: Optional[float] = None
    hi: Optional[float] = None
    choices: Tuple[str, ...] = ()
    parameter: bool = True  # False: deliberately not a node parameter (the reason is in `doc`)


def param(default: Any, doc: str, lo: Optional[float] = None, hi: Optional[float] = None,
          choices: Tuple[str, ...] = (), parameter: bool = True):
    """Declare a dataclass field with its documentation in the field's metadata (see `field_doc`)."""
    meta = {"doc": FieldDoc(doc, lo, hi, tuple(choices), parameter)}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_doc(f: dataclasses.Field) -> Optional[FieldDoc]:
    """Return the `FieldDoc` of a dataclass field declared with `param`, else None."""
    return f.metadata.get("doc")


def field_default(f: dataclasses.Field) -> Any:
    """Return the default value of a dataclass field (calling its factory when it has one)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]
