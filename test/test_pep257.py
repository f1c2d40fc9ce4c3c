"""ament_pep257, as colcon test runs it in a ROS 2 package, with this repo's docstring convention."""
from pathlib import Path

import pytest

try:
    from ament_pep257.main import main
except ImportError:  # not a ROS 2 install: pydocstyle with ARGV's convention is the same check
    main = None

ROOT = Path(__file__).resolve().parents[1]
#: pydocstyle's pep257 convention without D100, D102, D104-D107 (module, method, package, magic method, nested
#: class and __init__ docstrings are optional): ``pydocstyle --convention=pep257
#: --add-ignore=D100,D102,D104,D105,D106,D107 lightglue_ros`` runs the same check without ROS.
#: The paths come first: ``--add-ignore`` takes one or more values and would swallow a path after it.
ARGV = [str(ROOT / "lightglue_ros"), "--convention", "pep257", "--add-ignore", "D100,D102,D104,D105,D106,D107"]


@pytest.mark.linter
@pytest.mark.pep257
@pytest.mark.skipif(main is None,
                    reason="ament_pep257 is not installed (it comes with a ROS 2 install: ros-<distro>-ament-pep257); "
                           "pydocstyle --convention=pep257 --add-ignore=D100,D102,D104,D105,D106,D107 lightglue_ros "
                           "is the same check")
def test_pep257():
    """The package's docstrings follow the convention of ARGV."""
    rc = main(argv=ARGV)
    assert rc == 0, "Found code style errors / warnings"
