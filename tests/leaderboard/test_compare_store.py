"""The package's shipped reference records: read beside the user's folder, from any working folder, never written."""

import shutil

import pytest

from usemabench.leaderboard import store
from usemabench.leaderboard.store import SHIPPED_LABEL, load_records


@pytest.fixture
def shipped(fabricated_records, tmp_path, monkeypatch):
    """A stand-in for usemabench/reference/records: one eval run of usema_s on 'other'."""
    folder = tmp_path / "package" / "reference" / "records"
    shutil.copytree(fabricated_records / "other" / "usema_s", folder / "other" / "usema_s")
    monkeypatch.setattr(store, "shipped_records_dir", lambda: folder)
    return folder


def test_shipped_records_are_read_beside_a_missing_user_folder(shipped, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    record_set = load_records(tmp_path / "empty" / "leaderboard" / "records", shipped=True)
    assert len(record_set.evals) == 1
    path = record_set.evals["record_path"].iloc[0]
    assert path.startswith(f"{SHIPPED_LABEL}/other/usema_s/")
    assert set(record_set.per_case["record_path"]) == {path}  # the per-case CSV beside it was found


def test_without_shipped_a_missing_folder_is_still_an_error(shipped, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_records(tmp_path / "nowhere")


def test_the_users_copy_of_a_shipped_record_is_read_once(shipped, fabricated_records, tmp_path):
    user = tmp_path / "user"
    shutil.copytree(fabricated_records / "other", user / "other")  # holds usema_s (same files) and unet
    record_set = load_records(user, shipped=True)
    assert sorted(record_set.evals["model"]) == ["unet", "usema_s"]
    assert not record_set.evals["record_path"].str.startswith(SHIPPED_LABEL).any()


def test_the_real_shipped_folder_is_package_data_inside_the_package():
    folder = store.shipped_records_dir()
    assert folder.parts[-3:] == ("usemabench", "reference", "records") and folder.is_dir()
