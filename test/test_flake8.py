"""ament_flake8, as colcon test runs it in a ROS 2 package, with this repo's setup.cfg [flake8] configuration."""
from pathlib import Path

import pytest

try:
    from ament_flake8.main import main_with_errors
except ImportError:  # not a ROS 2 install: test_layout.py::test_flake8_is_clean runs plain flake8
    main_with_errors = None

ROOT = Path(__file__).resolve().parents[1]
#: What test_layout.py lints too; ament_flake8's own configuration (99 columns) would not be this repo's style.
ARGV = ["--config", str(ROOT / "setup.cfg")] + [str(ROOT / p) for p in ("lightglue_ros", "test", "launch", "setup.py")]


@pytest.mark.flake8
@pytest.mark.linter
@pytest.mark.skipif(main_with_errors is None,
                    reason="ament_flake8 is not installed (it comes with a ROS 2 install: ros-<distro>-ament-flake8); "
                           "test_layout.py runs flake8 with this repo's setup.cfg instead")
def test_flake8():
    """The package, the tests and the launch file pass ament_flake8 (its plugins included)."""
    rc, errors = main_with_errors(argv=ARGV)
    assert rc == 0, f"Found {len(errors)} code style errors / warnings:\n" + "\n".join(errors)
