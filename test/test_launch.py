"""launch/matcher.launch.py and config/matcher.rviz.

launch_ros is not installable from PyPI: the launch file is checked statically here (syntax, arguments,
executable, installed files) and, where launch_ros imports (a ROS 2 install), loaded for real.
"""
import ast
import importlib.util
import runpy
from glob import glob
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "matcher.launch.py"
RVIZ = ROOT / "config" / "matcher.rviz"
ARGUMENTS = {"namespace", "image", "camera_info", "depth", "params_file", "use_sim_time", "device", "rviz"}


def _calls(tree: ast.AST, name: str):
    for n in ast.walk(tree):
        if isinstance(n, ast.Call):
            f = n.func
            if (isinstance(f, ast.Name) and f.id == name) or (isinstance(f, ast.Attribute) and f.attr == name):
                yield n


def _first_str(call: ast.Call):
    return call.args[0].value if call.args and isinstance(call.args[0], ast.Constant) else None


def _kwarg(call: ast.Call, key: str):
    return next((k.value for k in call.keywords if k.arg == key), None)


@pytest.fixture(scope="module")
def tree():
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


@pytest.fixture(scope="module")
def setup_kwargs(monkeypatch_module):
    """setup.py's arguments, captured by running it with setuptools.setup replaced (cwd = repo for its globs)."""
    import setuptools

    captured = {}
    monkeypatch_module.setattr(setuptools, "setup", lambda **kw: captured.update(kw))
    monkeypatch_module.chdir(ROOT)
    runpy.run_path(str(ROOT / "setup.py"), run_name="__main__")
    return captured


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_declares_the_documented_arguments_and_uses_only_declared_ones(tree):
    declared = {_first_str(c) for c in _calls(tree, "DeclareLaunchArgument")}
    used = {_first_str(c) for c in _calls(tree, "LaunchConfiguration")}
    assert declared == ARGUMENTS
    assert used <= declared, f"LaunchConfiguration without DeclareLaunchArgument: {used - declared}"
    for call in _calls(tree, "DeclareLaunchArgument"):
        assert _kwarg(call, "description") is not None and _kwarg(call, "default_value") is not None


def test_node_executable_is_a_console_script_of_setup_py(tree, setup_kwargs):
    nodes = {ast.literal_eval(_kwarg(c, "executable")): c for c in _calls(tree, "Node")}
    assert set(nodes) == {"matcher_node", "rviz2"}
    scripts = dict(s.replace(" ", "").split("=") for s in setup_kwargs["entry_points"]["console_scripts"])
    assert scripts["matcher_node"] == "lightglue_ros.ros.node:main"
    matcher = nodes["matcher_node"]
    assert ast.literal_eval(_kwarg(matcher, "name")) == "lightglue_matcher"
    remapped = {ast.literal_eval(t.elts[0]) for t in _kwarg(matcher, "remappings").elts}
    assert remapped == {"image", "image/compressed", "camera_info", "depth"}
    assert _kwarg(nodes["rviz2"], "condition") is not None  # RViz only when asked


def test_files_it_names_are_installed_by_setup_py(tree, setup_kwargs):
    named = [[a.value for a in c.args if isinstance(a, ast.Constant)] for c in _calls(tree, "join")]  # os.path.join
    rel = {"/".join(parts) for parts in named if parts}
    assert rel == {"config/matcher.yaml", "config/matcher.rviz"}
    installed = {}
    for dest, files in setup_kwargs["data_files"]:
        for f in files:
            installed[f] = dest
    for r in rel | {"launch/matcher.launch.py"}:
        assert r in installed, f"{r} not in setup.py data_files"
        assert installed[r] == f"share/lightglue_ros/{Path(r).parent}"
    pkg = [c for c in _calls(tree, "get_package_share_directory")]
    assert pkg and all(isinstance(c.args[0], ast.Name) for c in pkg)  # PACKAGE constant
    assert "PACKAGE = \"lightglue_ros\"" in LAUNCH.read_text()
    assert setup_kwargs["name"] == "lightglue_ros"
    assert sorted(glob(str(ROOT / "config" / "*.yaml")))  # the glob in setup.py finds the file


def test_rviz_config_is_yaml_with_the_node_topics():
    doc = yaml.safe_load(RVIZ.read_text())
    manager = doc["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "odom"
    displays = {d["Class"]: d for d in manager["Displays"]}
    for cls in ("Image", "Odometry", "Path", "TF"):
        assert f"rviz_default_plugins/{cls}" in displays, cls
    topics = {d["Class"].split("/")[1]: d["Topic"]["Value"] for d in manager["Displays"] if "Topic" in d}
    assert topics == {"Image": "matches/image", "Odometry": "odom", "Path": "path"}
    # The node's output QoS is reliable: the displays ask for what is offered.
    assert all(d["Topic"]["Reliability Policy"] == "Reliable" for d in manager["Displays"] if "Topic" in d)


def test_launch_description_loads_with_launch_ros():
    pytest.importorskip("launch_ros", reason="launch_ros is not installable from PyPI; needs a ROS 2 install")
    pytest.importorskip("ament_index_python")
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument

    try:
        get_package_share_directory("lightglue_ros")
    except PackageNotFoundError:
        pytest.skip("lightglue_ros is not installed in an ament index (colcon build + source install/setup.bash)")
    spec = importlib.util.spec_from_file_location("matcher_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ld = module.generate_launch_description()
    assert isinstance(ld, LaunchDescription)
    names = {a.name for a in ld.entities if isinstance(a, DeclareLaunchArgument)}
    assert names == ARGUMENTS
