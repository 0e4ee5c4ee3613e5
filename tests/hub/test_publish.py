"""A user's path end to end: train a tiny run, `usemabench push` it, `predict --weights org/repo`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from usemabench.cli import main
from usemabench.datasets.synthetic import ensure_synthetic

from test_hub import hub  # noqa: F401  (the fake-Hub fixture)


@pytest.mark.slow
def test_push_then_predict_from_the_hub(tiny_run, hub, tmp_path: Path, capsys) -> None:  # noqa: F811
    run_dir, records = tiny_run
    assert main(["push", str(run_dir), "lab/usema-tiny-synthetic", "--records-dir", str(records)]) == 0

    capsys.readouterr()
    assert main(["pull", "lab/usema-tiny-synthetic"]) == 0
    folder = Path(capsys.readouterr().out.strip().splitlines()[-1])
    card = (folder / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["model-index"][0]["results"][0]["metrics"][0]["type"] == "dice"
    assert metadata["usemabench"]["dataset"]["name"] == "synthetic"
    assert "tiny-publish" in card and "Reconstructed" in card

    images = tmp_path / "images"
    images.mkdir()
    for image in sorted((ensure_synthetic() / "images").glob("*.png"))[:2]:
        (images / image.name).write_bytes(image.read_bytes())
    output = tmp_path / "masks"
    assert main(["predict", "--model", "usema_tiny", "--weights", "lab/usema-tiny-synthetic", str(images), str(output)]) == 0
    assert sorted(path.name for path in output.glob("*.png")) == sorted(path.name for path in images.iterdir())
