"""matcher_node for real: its own process, real rclpy and DDS (SHM only), synthetic frames with ground truth.

Two node runs carry most checks (each node start costs seconds: torch + weights):
- monocular: 40 raw rgb8 frames, best-effort input, lock-step; then malformed messages, a burst, SIGINT;
- RGB-D: compressed images + 16UC1 depth, reliable input, frames resized by max_image_size, a reset half-way.
"""
from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (make install / a sourced ROS 2)")

import nodetools as nt  # noqa: E402
import yaml  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from lightglue_ros.core import lie  # noqa: E402
from lightglue_ros.geometry import frames  # noqa: E402
from lightglue_ros.io import msg_decode as dec  # noqa: E402
from lightglue_ros.ros import msgs as conv  # noqa: E402
from lightglue_ros.ros import node as node_mod  # noqa: E402
from lightglue_ros.ros import sync  # noqa: E402

DOMAIN = nt.domain_id_for(__name__)
YAML_PATH = nt.REPO / "config" / "matcher.yaml"
T_BASE_CAM = lie.transform_from_xyzq(frames.OPTICAL_TO_BODY_XYZQ)  # the default camera_to_base
FAST = {"max_keypoints": 256, "diagnostics_period": 0.2}  # small + quick diagnostics for lock-step play
MONO_FRAMES, RGBD_FRAMES, RESET_AT = 40, 30, 15
IMAGE_SUBSCRIBE_AT = 30  # mono run: matches/image gets a subscriber from this frame on


@dataclass
class Run:
    process: nt.NodeProcess
    collector: nt.Collector
    player: nt.Player
    frames: list
    sent: List[float]
    diag: Dict[str, object] = field(default_factory=dict)  # diagnostics right after the last frame
    extra: Dict[str, object] = field(default_factory=dict)


@pytest.fixture(scope="module")
def ros():
    side = nt.RosSide(DOMAIN)
    yield side
    side.close()


def _start(ros, tmp_path_factory, params) -> nt.NodeProcess:
    proc = nt.start_matcher(ros.domain_id, params=params, params_file=YAML_PATH,
                            log_dir=tmp_path_factory.mktemp("node"))
    try:
        ros.wait_ready(proc, timeout=90)
    except Exception:
        proc.kill()
        raise
    return proc


def _settle(collector: nt.Collector, frames_sent: int, timeout: float = 10.0) -> Dict[str, object]:
    """Diagnostics once every received frame has its outcome."""
    def settled() -> bool:
        d = collector.diagnostics_values()
        return d.get("received", -1) == frames_sent and collector.outcomes() == frames_sent
    nt.wait_for(settled, timeout)
    return collector.diagnostics_values()


@pytest.fixture(scope="module")
def mono(ros, tmp_path_factory):
    frames = nt.synthetic_frames(MONO_FRAMES, 320, 240, depth=False)
    proc = _start(ros, tmp_path_factory, FAST)
    collector, player = nt.Collector(ros), nt.Player(ros)
    assert player.wait_subscribed(20), proc.output()
    time.sleep(0.5)  # the node's readers match our writers a moment after we see them (best effort drops before)
    extra = {}
    try:
        sent = nt.play(player, collector, frames[:IMAGE_SUBSCRIBE_AT])
        extra["images_before_subscriber"] = _settle(collector, IMAGE_SUBSCRIBE_AT).get("matches_images")
        collector.subscribe_match_image()
        nt.wait_for(lambda: ros.node.count_subscribers("/matches/image") > 0, 10)
        time.sleep(0.5)  # let the node's publisher see the new subscriber
        sent += nt.play(player, collector, frames[IMAGE_SUBSCRIBE_AT:])
        diag = _settle(collector, MONO_FRAMES)
        nt.wait_for(lambda: len(collector.odom) >= diag.get("processed", 0), 5)
    except Exception:
        proc.kill()
        print(proc.output())
        raise
    yield Run(proc, collector, player, frames, sent, diag, extra)
    proc.kill()


@pytest.fixture(scope="module")
def ros_rgbd():
    """A domain of its own: the RGB-D node never hears the monocular one, whatever tests are selected."""
    side = nt.RosSide(nt.domain_id_for(__name__ + ":rgbd"))
    yield side
    side.close()


@pytest.fixture(scope="module")
def rgbd(ros_rgbd, tmp_path_factory):
    ros = ros_rgbd
    frames = nt.synthetic_frames(RGBD_FRAMES, 320, 240, depth=True)
    params = dict(FAST, use_depth=True, image_transport="compressed", qos="reliable", max_image_size=256)
    proc = _start(ros, tmp_path_factory, params)
    collector, player = nt.Collector(ros, namespace=""), nt.Player(ros, compressed=True)
    assert player.wait_subscribed(20, depth=True), proc.output()
    time.sleep(0.5)
    extra = {}
    try:
        kw = dict(with_depth=True, depth_encoding="16UC1")
        sent = nt.play(player, collector, frames[:RESET_AT], **kw)
        extra["odom_before_reset"] = len(collector.odom)
        extra["reset"] = ros.call_reset()
        sent += nt.play(player, collector, frames[RESET_AT:], **kw)
        diag = _settle(collector, RGBD_FRAMES)
    except Exception:
        proc.kill()
        print(proc.output())
        raise
    yield Run(proc, collector, player, frames, sent, diag, extra)
    proc.kill()


def _gt_and_est(run: Run):
    """Matched (estimated camera position, GT camera position) by stamp."""
    est = nt.poses_from_odom(run.collector.odom, T_BASE_CAM)
    gt = {nt.STAMP0 + f.stamp: f.gt_pose for f in run.frames}
    stamps = sorted(s for s in est if s in gt)
    return (np.array([est[s][:3, 3] for s in stamps]), np.array([gt[s][:3, 3] for s in stamps]), stamps)


# ------------------------------------------------------------------------------------------------ pure pieces
def test_stamp_pairer_pairs_within_slop_and_evicts_older_images():
    p = sync.StampPairer(slop=0.01, capacity=3)
    assert p.add_image(1.0, "i1") == ([], [])
    assert p.add_image(2.0, "i2") == ([], [])
    pairs, evicted = p.add_depth(2.005, "d2")  # pairs the newest image; the older one can no longer pair
    assert pairs == [("i2", "d2")] and evicted == ["i1"]
    assert p.add_depth(3.0, "d3") == ([], [])  # depth first, image later
    assert p.add_image(3.02, "i3") == ([], [])  # outside slop
    assert p.add_image(2.995, "i4") == ([("i4", "d3")], ["i3"])
    for k in range(4):  # bounded: overflow evicts the oldest image
        pairs, evicted = p.add_image(10.0 + k, f"x{k}")
    assert evicted == ["x0"] and len(p.images) == 3


def test_reason_keys_are_bounded():
    from lightglue_ros.core.types import reason_key

    assert reason_key("image 320x240 does not match camera_info 640x480") == \
        "image NxN does not match camera_info NxN"
    assert reason_key("invalid camera: focal length must be positive (fx=0)") == "invalid camera"
    assert reason_key("time jumped backwards; too few matches") == "time jumped backwards"
    assert reason_key("too few keypoints (3 < 8)") == "too few keypoints"
    assert reason_key("") == "unknown" and reason_key("bad_step") == "bad_step"


def test_parameter_table_covers_every_core_field_with_documentation():
    from lightglue_ros.matching.frontend import FrontEndConfig
    from lightglue_ros.odometry.odometry import OdometryConfig
    from lightglue_ros.core.config import field_doc
    import dataclasses

    table = node_mod.parameter_table()
    names = [p.name for p in table]
    assert len(names) == len(set(names)), "duplicate parameter names"
    covered = ({(p.target, p.config_field) for p in table} | {tuple(p.covers.split(".")) for p in table if p.covers})
    for cls, target in ((FrontEndConfig, "frontend"), (OdometryConfig, "odometry")):
        for f in dataclasses.fields(cls):
            doc = field_doc(f)
            if doc is not None and not doc.parameter:
                continue  # deliberately not a parameter; its doc says why
            assert (target, f.name) in covered, f"{cls.__name__}.{f.name} has no ROS parameter"
    undocumented = [p.name for p in table if "(undocumented)" in p.description]
    assert not undocumented, f"declare these config fields with core.config.param(...): {undocumented}"
    for p in table:  # every default lies inside its declared range and choices
        if p.lo is not None and not isinstance(p.default, bool):
            assert p.lo <= p.default <= p.hi, p.name
        if p.choices:
            assert p.default in p.choices, p.name


def _yaml_line(p) -> str:
    value = yaml.safe_dump(p.default, default_flow_style=True).strip().removesuffix("...").strip()
    return f"    {p.name}: {value}"


def test_yaml_lists_exactly_the_declared_parameters_with_their_defaults():
    doc = yaml.safe_load(YAML_PATH.read_text())
    params = doc["lightglue_matcher"]["ros__parameters"]
    table = {p.name: p.default for p in node_mod.parameter_table()}
    missing = [_yaml_line(p) for p in node_mod.parameter_table() if p.name not in params]
    assert not missing, "config/matcher.yaml lacks:\n" + "\n".join(missing)
    assert set(params) == set(table), f"not node parameters: {sorted(set(params) - set(table))}"
    for name, default in table.items():
        assert params[name] == default and type(params[name]) is type(default), \
            f"{name}: yaml {params[name]!r} != node default {default!r}"


# ------------------------------------------------------------------------------------------------ monocular run
def test_every_frame_has_one_outcome_and_odometry_per_processed_frame(mono):
    d = mono.diag
    assert d["received"] == MONO_FRAMES
    assert d["processed"] + d["skipped"] + d["failed"] == MONO_FRAMES
    assert d["processed"] >= MONO_FRAMES - 3, d
    assert len(mono.collector.odom) == d["processed"]  # publish_when_lost true: every processed frame


def test_odometry_stamps_frames_and_covariances(mono):
    odom = mono.collector.odom
    sent = set(mono.sent)
    stamps = [dec.stamp_to_sec(m.header.stamp) for m in odom]
    assert all(s in sent for s in stamps) and stamps == sorted(stamps)
    first = odom[0]
    assert (first.header.stamp.sec, first.header.stamp.nanosec) == (int(nt.STAMP0), 0)
    for m in odom:
        assert m.header.frame_id == "odom" and m.child_frame_id == "base_link"
        p, q = m.pose.pose.position, m.pose.pose.orientation
        values = [p.x, p.y, p.z, q.x, q.y, q.z, q.w, *m.pose.covariance, *m.twist.covariance]
        assert all(math.isfinite(v) for v in values)
        assert abs(q.x ** 2 + q.y ** 2 + q.z ** 2 + q.w ** 2 - 1) < 1e-6
    for m in odom[5:]:  # after initialisation: a real (positive-definite, symmetric) covariance
        cov = np.reshape(m.pose.covariance, (6, 6))
        assert np.allclose(cov, cov.T) and np.linalg.eigvalsh(cov).min() > 0, cov


def test_monocular_trajectory_matches_ground_truth_after_sim3(mono):
    est, gt, _ = _gt_and_est(mono)
    assert len(est) >= MONO_FRAMES - 3
    ate, scale = nt.ate_sim3(est, gt)
    length = nt.path_length(gt)
    print(f"monocular: Sim(3) ATE {ate:.4f} m on a {length:.2f} m path ({100 * ate / length:.2f} %)")
    assert ate < 0.05 * length, f"ATE {ate:.4f} m on a {length:.2f} m path (scale {scale:.3f})"
    # The orbit moves the camera mostly along its optical axis and sideways: base x/y, not z (REP-103 mapping).
    odom_xyz = np.array([[m.pose.pose.position.x, m.pose.pose.position.y, m.pose.pose.position.z]
                         for m in mono.collector.odom])
    gt_base = (T_BASE_CAM[:3, :3] @ gt.T).T
    corr = [np.corrcoef(odom_xyz[-len(gt):, k], gt_base[:, k])[0, 1] for k in range(3) if np.ptp(gt_base[:, k]) > 0.05]
    assert all(c > 0.9 for c in corr), corr


def test_matches_cloud_has_documented_fields_and_decodes(mono):
    clouds = mono.collector.matches
    assert len(clouds) >= MONO_FRAMES - 4
    sent = set(mono.sent)
    for msg in clouds:
        assert msg.header.frame_id == "camera_optical_frame" and dec.stamp_to_sec(msg.header.stamp) in sent
        assert [f.name for f in msg.fields] == ["track_id", "u0", "v0", "u1", "v1", "score"]
        assert msg.height == 1 and msg.point_step == 24 and msg.row_step == 24 * msg.width
    pts = conv.cloud_to_numpy(clouds[-1])
    assert len(pts) > 30
    assert np.all((pts["u1"] >= 0) & (pts["u1"] < 320) & (pts["v1"] >= 0) & (pts["v1"] < 240))
    assert np.all((pts["score"] >= 0) & (pts["score"] <= 1))
    assert len(np.unique(pts["track_id"])) == len(pts)
    # Track ids persist: consecutive clouds share many ids.
    prev = set(conv.cloud_to_numpy(clouds[-2])["track_id"].tolist())
    assert len(prev & set(pts["track_id"].tolist())) > 10


def test_diagnostics_report_counts_rates_and_stages(mono):
    d = mono.diag
    for key in ("input_rate_hz", "processed_rate_hz", "extract_ms", "match_ms", "pose_ms", "total_ms",
                "stop_layer_mean", "pruned_fraction", "matches_mean", "inliers_mean", "state", "device", "dropped"):
        assert key in d, key
    assert d["state"] == "tracking" and d["device"] == "cpu" and d["backend"] == "lightglue"
    busy = [a for a in mono.collector.diagnostics if _val(a, "processed_rate_hz") > 0]
    assert busy, "no diagnostics while frames were processed"
    assert max(_val(a, "total_ms") for a in busy) > 0 and max(_val(a, "stop_layer_mean") for a in busy) >= 1


def _val(array, key):
    for kv in array.status[0].values:
        if kv.key == key:
            return float(kv.value)
    return 0.0


def test_matches_image_is_drawn_only_for_a_subscriber(mono):
    assert mono.extra["images_before_subscriber"] == 0
    images = mono.collector.match_images
    assert len(images) >= MONO_FRAMES - IMAGE_SUBSCRIBE_AT - 2
    img = images[-1]
    assert img.encoding == "rgb8" and img.width == 2 * 320 and img.height > 240
    assert dec.stamp_to_sec(img.header.stamp) in set(mono.sent)
    assert dec.image_to_numpy(img).std() > 10


def test_path_follows_odometry(mono):
    path = mono.collector.paths[-1]
    assert path.header.frame_id == "odom" and len(path.poses) == len(mono.collector.odom)
    last, odom = path.poses[-1].pose.position, mono.collector.odom[-1].pose.pose.position
    assert (last.x, last.y, last.z) == (odom.x, odom.y, odom.z)


def test_declared_parameters_match_the_yaml_on_the_running_node(mono, ros):
    values = ros.parameters()
    doc = yaml.safe_load(YAML_PATH.read_text())["lightglue_matcher"]["ros__parameters"]
    ours = {k: v for k, v in values.items() if k not in ("use_sim_time", "start_type_description_service")}
    assert set(ours) == set(doc)
    for name, value in ours.items():
        expected = FAST.get(name, doc[name])
        assert value == (list(expected) if isinstance(expected, tuple) else expected), name
    described = ros.describe(["sync_slop", "max_keypoints", "qos"])
    assert described["sync_slop"].floating_point_range[0].to_value == 1.0 and described["sync_slop"].read_only
    assert described["max_keypoints"].integer_range[0].from_value == -1
    assert "sensor_data" in described["qos"].additional_constraints and described["qos"].description


def test_malformed_messages_and_bursts_are_counted_never_fatal(mono):
    col, player = mono.collector, mono.player
    before = col.diagnostics_values()
    bad = []
    for encoding, step, data, w, h in (("rgb8", 5, b"\0" * 100, 4, 4), ("yuv422", 8, b"\0" * 32, 4, 4),
                                       ("rgb8", 0, b"", 0, 0), ("rgb8", 12, b"\0" * 10, 4, 4)):
        msg = Image(header=player.header(5000.0 + len(bad)), height=h, width=w, encoding=encoding, step=step)
        msg.data = data
        bad.append(msg)
    for msg in bad:
        player.publish_raw(msg)
        time.sleep(0.15)  # not a burst: each must reach the worker
    for i in range(8):  # a burst the worker cannot keep up with: older frames dropped, counted
        player.publish(mono.frames[i % len(mono.frames)], stamp=6000.0 + i)
    # Best-effort input: DDS itself may drop part of the burst (queue_size 5); what arrives is all accounted for.

    def settled() -> bool:
        d = col.diagnostics_values()
        return d["received"] >= before["received"] + len(bad) + 5 and col.outcomes() == d["received"]
    assert nt.wait_for(settled, 30), col.diagnostics_values()
    time.sleep(0.5)
    d = col.diagnostics_values()
    assert mono.process.alive(), mono.process.output()
    assert col.outcomes() == d["received"], d
    for reason in ("bad_step", "unknown_encoding", "empty_image", "short_data"):
        assert d.get(f"failed.{reason}", 0) >= 1, (reason, d)
    assert d["dropped"] >= 1 and d.get("skipped.dropped") == d["dropped"]


def test_sigint_shuts_down_cleanly(mono):
    code = mono.process.stop(signal.SIGINT, timeout=20)
    out = mono.process.output()
    assert code == 0, out
    assert "Traceback" not in out, out


# ------------------------------------------------------------------------------------------------ RGB-D run
def test_rgbd_odometry_is_metric(rgbd):
    d = rgbd.diag
    assert d["received"] == RGBD_FRAMES and d["processed"] >= RGBD_FRAMES - 3, d
    est, gt, _ = _gt_and_est(rgbd)
    length = nt.path_length(gt)
    ate_se3, _ = nt.ate_sim3(est, gt, with_scale=False)
    ate_sim3, scale = nt.ate_sim3(est, gt)
    print(f"RGB-D: SE(3) ATE {ate_se3:.4f} m on a {length:.2f} m path ({100 * ate_se3 / length:.2f} %), "
          f"Sim(3) scale {scale:.3f}")
    assert ate_se3 < 0.05 * length, f"SE(3) ATE {ate_se3:.4f} m on {length:.2f} m"
    assert abs(scale - 1) < 0.1, f"metric scale off: Sim(3) scale {scale:.3f}"


def test_reset_service_keeps_odometry_continuous(rgbd):
    res = rgbd.extra["reset"]
    assert res.success and res.message
    odom = rgbd.collector.odom
    k = rgbd.extra["odom_before_reset"]
    assert len(odom) > k + 5, "odometry did not continue after the reset"
    xyz = np.array([[m.pose.pose.position.x, m.pose.pose.position.y, m.pose.pose.position.z] for m in odom])
    steps = np.linalg.norm(np.diff(xyz, axis=0), axis=1)
    typical = np.median(steps)
    assert steps[k - 1: k + 2].max() < 4 * typical + 0.02, (steps[k - 3: k + 3], typical)


def test_rgbd_cloud_has_metric_points_in_original_pixels(rgbd):
    pts = conv.cloud_to_numpy(rgbd.collector.matches[-1])
    assert pts.dtype.names[:3] == ("x", "y", "z")
    good = np.isfinite(pts["z"])
    assert good.mean() > 0.8 and np.all((pts["z"][good] > 0.1) & (pts["z"][good] < 20))
    # Frames were processed at 256 px wide (max_image_size) but pixels are reported in the 320 px image.
    assert pts["u1"].max() > 256 and pts["u1"].max() < 320


# ------------------------------------------------------------------------------------------------ start-up errors
INVALID = (({"qos": "fast"}, "qos"), ({"sync_slop": 5.0}, "sync_slop"),
           ({"camera_to_base": [0.0, 0.0, 0.0]}, "camera_to_base"), ({"max_keypoints": "many"}, "max_keypoints"))


XFEAT_FRAMES = 15


def test_xfeat_backend_runs_in_the_node(tmp_path_factory):
    """backend: xfeat through real topics: every frame gets odometry and diagnostics name the backend."""
    ros = nt.RosSide(nt.domain_id_for(__name__ + ":xfeat"))
    frames = nt.synthetic_frames(XFEAT_FRAMES, 320, 240, depth=False)
    proc = _start(ros, tmp_path_factory, dict(FAST, backend="xfeat"))
    try:
        collector, player = nt.Collector(ros), nt.Player(ros)
        assert player.wait_subscribed(20), proc.output()
        time.sleep(0.5)
        sent = nt.play(player, collector, frames)
        d = _settle(collector, XFEAT_FRAMES)
        assert d["backend"] == "xfeat" and d["failed"] == 0, (d, proc.output())
        assert d["processed"] >= XFEAT_FRAMES - 1 and d["stop_layer_mean"] >= 1
        nt.wait_for(lambda: len(collector.odom) >= d["processed"], 5)
        est, gt, _ = _gt_and_est(Run(proc, collector, player, frames, sent))
        assert len(est) >= XFEAT_FRAMES - 3
        ate, _ = nt.ate_sim3(est, gt)
        assert ate < 0.05 * nt.path_length(gt), ate
    finally:
        proc.kill()
        ros.close()


def test_invalid_parameters_fail_at_start_with_a_clear_error(tmp_path):
    # Started together: each start pays the torch import, the checks run before any model loads.
    procs = [nt.start_matcher(DOMAIN, params=p, log_dir=tmp_path / str(i)) for i, (p, _) in enumerate(INVALID)]
    try:
        codes = [p.proc.wait(timeout=90) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for (params, needle), proc, code in zip(INVALID, procs, codes):
        out = proc.output()
        assert code == 2, (params, out)
        assert "invalid parameters" in out and needle in out and "Traceback" not in out, out


def test_yaml_and_readme_are_generated_from_the_config_dataclasses():
    from lightglue_ros.ros import params

    assert YAML_PATH.read_text() == params.render_yaml(), \
        "config/matcher.yaml is stale: python -m lightglue_ros.ros.params --yaml > config/matcher.yaml"
    assert params.render_markdown() in (nt.REPO / "README.md").read_text(), \
        "README's parameter table is stale: paste python -m lightglue_ros.ros.params --markdown"


# ------------------------------------------------------------------------------------------------ the harness
def test_tests_demo_and_longrun_share_one_harness():
    from pathlib import Path

    from lightglue_ros.tools import demo, harness, longrun

    assert nt.Player is harness.Player and nt.Collector is harness.Collector and nt.play is harness.play
    assert nt.start_matcher is harness.start_matcher and nt.wait_for is harness.wait_until
    assert demo.Player is harness.Player and longrun.Collector is harness.Collector
    env = harness.ros_env(42, {"ROS_LOCALHOST_ONLY": "1", "PATH": "/bin"})
    assert env["ROS_DOMAIN_ID"] == "42" and "ROS_LOCALHOST_ONLY" not in env and env["PATH"] == "/bin"
    assert Path(env["FASTDDS_DEFAULT_PROFILES_FILE"]).name == "fastdds_shm_only.xml"
    assert [harness.ros_value(v) for v in (0.1, True, [1, 2.0], "", "orb", 3)] == \
        ["0.1", "true", "[1,2.0]", "''", "orb", "3"]


def test_collector_records_arrivals_and_keeps_a_bounded_history(ros):
    from nav_msgs.msg import Odometry
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    col = nt.Collector(ros, namespace="/harness_check", topics=("odom",), keep=5)
    pub = ros.node.create_publisher(Odometry, "/harness_check/odom",
                                    QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    try:
        assert nt.wait_for(lambda: pub.get_subscription_count() > 0, 10)
        stamps = [nt.STAMP0 + 0.1 * i for i in range(30)]
        for t in stamps:
            odom = Odometry()
            odom.header.stamp = conv.sec_to_stamp(t)
            pub.publish(odom)
        assert col.wait(lambda: col.has_odom(stamps[-1]), 10)
        assert all(col.has_odom(t) for t in stamps) and not col.has_odom(stamps[-1] + 0.05)
        assert col.odom_arrival(stamps[0]) <= col.odom_arrival(stamps[-1])
        assert 5 <= len(col.odom) <= 10 and col.odom_stamps()[-1] == pytest.approx(stamps[-1])
    finally:
        ros.node.destroy_publisher(pub)


def test_the_worker_thread_builds_the_pipeline_and_start_up_errors_still_raise(ros, monkeypatch):
    """Torch runs in one thread only: once another thread has run a parallel torch op, the worker's inference is
    1.6x slower (README, xfeat section), so the worker builds the pipeline. A configuration the pipeline refuses
    still fails the construction, in the caller's thread, as a ParameterError."""
    import threading

    from rclpy.parameter import Parameter

    from lightglue_ros.ros.params import ParameterError

    built = []

    class Recording(node_mod.Pipeline):
        def __init__(self, *args, **kwargs):
            built.append(threading.current_thread())
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(node_mod, "Pipeline", Recording)
    node = node_mod.MatcherNode(context=ros.context, namespace="/inproc",
                                parameter_overrides=[Parameter("backend", value="orb")])
    try:
        assert built == [node.worker] and node.worker.is_alive() and node.pipeline is not None
    finally:
        node.close()
        node.destroy_node()
    assert not node.worker.is_alive()
    with pytest.raises(ParameterError, match="bf16"):
        node_mod.MatcherNode(context=ros.context, namespace="/inproc2",
                             parameter_overrides=[Parameter("backend", value="orb"),
                                                  Parameter("precision", value="bf16")])
    # A start-up error after the build (here the node's mask file) ends the worker too: no thread idles on.
    with pytest.raises(ParameterError, match="mask_file"):
        node_mod.MatcherNode(context=ros.context, namespace="/inproc3",
                             parameter_overrides=[Parameter("backend", value="orb"),
                                                  Parameter("mask_file", value="/nonexistent/mask.png")])
    assert built[-1].name == "lightglue_worker"
    built[-1].join(timeout=5.0)
    assert not built[-1].is_alive()
