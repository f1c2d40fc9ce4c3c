"""The node's ROS parameters: declared from the core's config dataclasses (their `core.config.param` metadata).

One table (`parameter_table`) is the source of what the node declares, of `config/matcher.yaml`
(`render_yaml`; a test checks the file is exactly that) and of the README's parameter table (`render_markdown`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node

from lightglue_ros.core.errors import LightGlueRosError
from lightglue_ros.core.config import FieldDoc, field_default, field_doc
from lightglue_ros.core.lie import transform_from_xyzq
from lightglue_ros.geometry.frames import OPTICAL_TO_BODY_XYZQ
from lightglue_ros.matching.frontend import FrontEndConfig
from lightglue_ros.odometry.odometry import OdometryConfig

NODE_NAME = "lightglue_matcher"


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter: where it goes, its default, its description and its valid values."""

    name: str
    default: Any
    description: str
    target: str = "node"  # node | frontend | odometry
    field: str = ""  # config field name when it differs from the parameter name
    covers: str = ""  # "odometry.use_depth": a node parameter that also stands for this core field
    lo: Optional[float] = None  # inclusive numeric range (declared as an Integer/FloatingPointRange)
    hi: Optional[float] = None
    choices: Tuple[str, ...] = ()

    @property
    def config_field(self) -> str:
        return self.field or self.name


_BIG = 1_000_000_000

#: The node's own parameters (the front end / odometry ones follow from their config dataclasses below).
NODE_PARAMS: Tuple[ParamSpec, ...] = (
    ParamSpec("odom_frame", "odom", "Frame of the published pose (odom origin = base pose at the first image)."),
    ParamSpec("base_frame", "base_link", "Child frame of odom: the robot body the camera is mounted on."),
    ParamSpec("camera_frame", "camera_optical_frame",
              "Camera optical frame used when an image header has an empty frame_id."),
    ParamSpec("publish_tf", True, "Broadcast the odom_frame -> base_frame transform."),
    ParamSpec("publish_when_lost", True,
              "While tracking is lost: true publishes odom with inflated covariance, false publishes nothing."),
    ParamSpec("qos", "sensor_data", "Input QoS: sensor_data (best effort) or reliable. A reliable subscriber "
              "never hears a best-effort camera.", choices=("sensor_data", "reliable")),
    ParamSpec("queue_size", 5, "History depth of the input subscriptions.", lo=1, hi=100),
    ParamSpec("image_transport", "raw", "raw: subscribe sensor_msgs/Image on 'image'; compressed: "
              "sensor_msgs/CompressedImage on 'image/compressed'.", choices=("raw", "compressed")),
    ParamSpec("use_depth", False, "RGB-D mode: subscribe 'depth' (16UC1 mm or 32FC1 m, registered to the image), "
              "pair it by stamp and estimate metric odometry.", covers="odometry.use_depth"),
    ParamSpec("sync_slop", 0.02, "Largest image/depth stamp difference paired (s).", lo=0.0, hi=1.0),
    ParamSpec("path_max_length", 1000, "Poses kept in the published path (0 = no path).", lo=0, hi=_BIG),
    ParamSpec("max_image_size", 0, "Longer image side processed (px); larger frames are resized, intrinsics "
              "scaled and keypoints scaled back (0 = full size).", lo=0, hi=16384),
    ParamSpec("camera_to_base", list(OPTICAL_TO_BODY_XYZQ),
              "Pose of the camera optical frame in base_frame, x y z qx qy qz qw, used when TF has none "
              "(default: forward-looking camera at the base origin, REP-103 optical -> body)."),
    ParamSpec("tf_timeout", 1.0, "Seconds to wait for the camera->base TF (tf2_ros only) before falling back "
              "to camera_to_base.", lo=0.0, hi=60.0),
    ParamSpec("mask_file", "", "Mono image file, non-zero = ignore (robot body), the size of the camera image; "
              "applied by the node so it follows max_image_size.", covers="frontend.static_mask"),
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", lo=0.05, hi=3600.0),
)


def _config_specs(cls, target: str, taken: set) -> List[ParamSpec]:
    """One ParamSpec per documented dataclass field (core.config.param) not covered by a node parameter."""
    specs = []
    for f in dataclasses.fields(cls):
        doc = field_doc(f)
        if f.name in taken or (doc is not None and not doc.parameter):
            continue
        # A field added to the core without documentation still becomes a parameter (tests flag it).
        doc = doc or FieldDoc(f"{cls.__name__}.{f.name} (undocumented)")
        specs.append(ParamSpec(f.name, field_default(f), doc.doc, target=target, lo=doc.lo, hi=doc.hi,
                               choices=doc.choices))
    return specs


def parameter_table() -> List[ParamSpec]:
    """Every parameter the node declares, in declaration order (the YAML lists the same, with defaults)."""
    node = list(NODE_PARAMS)
    covered = {p.covers for p in node if p.covers}
    fe_taken = {c.split(".")[1] for c in covered if c.startswith("frontend.")}
    od_taken = {c.split(".")[1] for c in covered if c.startswith("odometry.")}
    return (node + _config_specs(FrontEndConfig, "frontend", fe_taken)
            + _config_specs(OdometryConfig, "odometry", od_taken))


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """Build the read-only ROS ParameterDescriptor of a parameter (description, choices, numeric range)."""
    d = ParameterDescriptor(name=spec.name, description=spec.description, read_only=True)
    if spec.choices:
        d.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.lo is not None and isinstance(spec.default, bool) is False:
        if isinstance(spec.default, int):
            d.integer_range = [IntegerRange(from_value=int(spec.lo), to_value=int(spec.hi), step=1)]
        elif isinstance(spec.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(spec.lo), to_value=float(spec.hi),
                                                         step=0.0)]
    return d


class ParameterError(LightGlueRosError, ValueError):
    """A parameter value the node cannot start with."""


def load_mask_file(path: str) -> Optional[np.ndarray]:
    """mask_file -> HxW bool (True = ignore), None when unset; an unreadable file is a start-up error."""
    from lightglue_ros.matching.frontend import FrontEndError, load_mask_image

    try:
        return load_mask_image(path)
    except FrontEndError as exc:
        raise ParameterError(f"parameter 'mask_file': {exc}") from None


@dataclass
class NodeSettings:
    """The node's own settings (frames, QoS, topics, TF, mask), as opposed to the core's configs."""

    odom_frame: str
    base_frame: str
    camera_frame: str
    publish_tf: bool
    publish_when_lost: bool
    qos: str
    queue_size: int
    image_transport: str
    use_depth: bool
    sync_slop: float
    path_max_length: int
    max_image_size: int
    camera_to_base: np.ndarray  # 4x4 T_base_cam
    tf_timeout: float
    mask_file: str
    diagnostics_period: float


def declare_all(node: Node) -> Dict[str, Any]:
    """Declare every parameter (read-only, described, ranged); a bad value raises ParameterError."""
    values = {}
    for spec in parameter_table():
        try:
            values[spec.name] = node.declare_parameter(spec.name, spec.default, descriptor(spec)).value
        except ParameterException as exc:
            raise ParameterError(f"parameter '{spec.name}': {exc}") from exc
        if spec.choices and values[spec.name] not in spec.choices:
            raise ParameterError(f"parameter '{spec.name}' must be one of {', '.join(spec.choices)}; "
                                 f"got '{values[spec.name]}'")
    return values


def build_configs(values: Dict[str, Any]) -> Tuple[NodeSettings, FrontEndConfig, OdometryConfig]:
    """Split declared values into the node's settings and the core's configs."""
    fe, od = {}, {}
    for spec in parameter_table():
        if spec.target == "frontend":
            fe[spec.config_field] = values[spec.name]
        elif spec.target == "odometry":
            od[spec.config_field] = values[spec.name]
    od["use_depth"] = values["use_depth"]  # one switch: subscribe depth and use it
    fe["static_mask"] = ""  # mask_file is loaded by the node (it must be resized with the frame)
    if values["min_depth"] >= values["max_depth"]:
        raise ParameterError(f"min_depth ({values['min_depth']}) must be below max_depth ({values['max_depth']})")
    try:
        T_base_cam = transform_from_xyzq(values["camera_to_base"])
    except ValueError as exc:
        raise ParameterError(f"parameter 'camera_to_base': {exc}") from exc
    node_fields = {f.name for f in dataclasses.fields(NodeSettings)}
    settings = NodeSettings(**{k: values[k] for k in node_fields if k != "camera_to_base"}, camera_to_base=T_base_cam)
    return settings, FrontEndConfig(**fe), OdometryConfig(**od)


# ------------------------------------------------------------------------------------------------ documents
#: Section headings of config/matcher.yaml, by parameter target.
_SECTIONS = {"node": "Node: frames, topics, QoS, output", "frontend": "Front end (FrontEndConfig): features, matching",
             "odometry": "Odometry (OdometryConfig): pose estimation, keyframes, loss"}


def _yaml_value(value: Any) -> str:
    import yaml

    if value == "":
        return '""'
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _range_text(spec: ParamSpec) -> str:
    if spec.choices:
        return " | ".join(spec.choices)
    if spec.lo is not None:
        return f"{spec.lo:g} .. {spec.hi:g}"
    return ""


def _wrap(text: str, width: int, prefix: str) -> List[str]:
    import textwrap

    return textwrap.wrap(text, width=width, initial_indent=prefix, subsequent_indent=prefix)


def render_yaml() -> str:
    """`config/matcher.yaml`: every parameter with its default, described (a test checks the file is this)."""
    lines = [
        f"# Parameters of {NODE_NAME}, every one with its default; read at start-up (read-only afterwards).",
        "# Load with: matcher_node --ros-args --params-file config/matcher.yaml (the launch file does this).",
        "# Generated from the config dataclasses: python -m lightglue_ros.ros.params --yaml > config/matcher.yaml",
        f"{NODE_NAME}:",
        "  ros__parameters:",
    ]
    section = None
    for spec in parameter_table():
        if spec.target != section:
            section = spec.target
            lines.append(f"    # ---- {_SECTIONS[section]}")
        rng = _range_text(spec)
        lines += _wrap(spec.description + (f" [{rng}]" if rng else ""), 116, "    # ")
        lines.append(f"    {spec.name}: {_yaml_value(spec.default)}")
    return "\n".join(lines) + "\n"


def _md_value(value: Any) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    if isinstance(value, (list, tuple)):
        return "`[" + ",".join(f"{v:g}" for v in value) + "]`"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _md_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (list, tuple)):
        return f"double[{len(value)}]"
    return {int: "int", float: "double", str: "string"}[type(value)]


def render_markdown() -> str:
    """Render the README's parameter table (a test checks the README holds exactly this)."""
    rows = ["| parameter | type | default | range / choices | description |", "|---|---|---|---|---|"]
    for spec in parameter_table():
        rng = " \\| ".join(spec.choices) if spec.choices else (
            f"{spec.lo:g}..{spec.hi:g}" if spec.lo is not None else "")
        rows.append(f"| `{spec.name}` | {_md_type(spec.default)} | {_md_value(spec.default)} | {rng} | "
                    f"{spec.description.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m lightglue_ros.ros.params --yaml | --markdown``: print a generated document."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m lightglue_ros.ros.params", description=main.__doc__)
    p.add_argument("--yaml", action="store_true", help="config/matcher.yaml")
    p.add_argument("--markdown", action="store_true", help="the README's parameter table")
    args = p.parse_args(argv)
    print(render_markdown() if args.markdown else render_yaml(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
