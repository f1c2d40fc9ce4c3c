"""Shared fixtures. DDS is confined to shared memory on this host before anything imports rclpy."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

# No packet may leave the machine: SHM-only Fast DDS profile and a domain of our own, set before rclpy loads.
os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(ROOT / "config" / "fastdds_shm_only.xml")
os.environ.setdefault("ROS_DOMAIN_ID", "73")
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")


def data_dir(name: str) -> Path:
    """A folder of ../shared/data, or skip with the reason (a user's fresh clone has no shared/)."""
    path = DATA / name
    if not path.is_dir():
        pytest.skip(f"real data {path} not present (it sits beside the repo in CI, see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def shared_data():
    return data_dir
