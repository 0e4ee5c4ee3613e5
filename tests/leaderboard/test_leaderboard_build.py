"""`build` cleans up only the figures an earlier build wrote, never other files in the reports folder."""

import shutil

from usemabench.reports.build import FIGURES_MANIFEST, build


def test_a_rebuild_removes_its_own_old_figures_and_keeps_the_users_files(fabricated_records, tmp_path):
    records = tmp_path / "records"
    shutil.copytree(fabricated_records / "other", records / "other")
    shutil.copytree(fabricated_records / "profiles", records / "profiles")
    figures = tmp_path / "reports" / "figures"
    figures.mkdir(parents=True)
    (figures / "my_plot.png").write_bytes(b"the user's own figure")
    build(records, tmp_path / "leaderboard", tmp_path / "reports")
    scaling = sorted(figures.glob("scaling_*.png"))
    assert scaling and (figures / "my_plot.png").exists()
    assert set((figures / FIGURES_MANIFEST).read_text().splitlines()) == {
        path.name for path in figures.glob("*.png") if path.name != "my_plot.png"
    }

    shutil.rmtree(records / "profiles")  # the next build draws no scaling charts
    build(records, tmp_path / "leaderboard", tmp_path / "reports")
    assert not any(path.exists() for path in scaling)
    assert (figures / "my_plot.png").read_bytes() == b"the user's own figure"
