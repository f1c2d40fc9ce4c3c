"""ament_python package: `colcon build` on a ROS 2 machine, `pip install -e .` everywhere else."""
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

package_name = "lightglue_ros"


def requirements(name: str) -> list:
    """Pinned lines of requirements/NAME.txt (versions live there only)."""
    path = Path(__file__).resolve().parent / "requirements" / f"{name}.txt"
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.xml")),
    ],
    # Python dependencies are pinned in requirements/*.txt (see the Makefile); on a ROS machine the
    # exec_depends of package.xml provide the rest.
    install_requires=["setuptools"],
    extras_require={"hf": requirements("hf")},  # the transformers backend: pip install .[hf]
    zip_safe=True,
    maintainer="lightglue_ros maintainers",
    maintainer_email="maintainers@lightglue-ros.invalid",
    description="LightGlue visual odometry for ROS 2: ALIKED + LightGlue matching, PoseLib pose, odometry.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "matcher_node = lightglue_ros.ros.node:main",
            "lightglue-ros = lightglue_ros.tools.cli:main",
        ],
    },
)
