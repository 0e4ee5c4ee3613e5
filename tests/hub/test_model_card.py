"""Model cards take the dataset's license and citation from the registry (records keep only its name)."""

from __future__ import annotations

import pytest
import yaml

from usemabench.datasets import get_dataset_spec
from usemabench.model_card import build_model_card
from usemabench.zoo import get_model_info

CONFIG = {"in_channels": 3, "num_classes": 2}


def card_for(dataset: dict) -> tuple[dict, str]:
    """(YAML metadata, body) of a card for weights trained on `dataset` (a record's dataset entry)."""
    record = {"dataset": dataset, "protocol": {"name": "quick", "hash": "abc"}, "seed": 0}
    text = str(build_model_card(get_model_info("usema_tiny"), CONFIG, train_record=record, eval_record=None))
    _, metadata, body = text.split("---\n", 2)
    return yaml.safe_load(metadata), body


def test_card_cites_a_registered_dataset_and_states_its_terms():
    spec = get_dataset_spec("kvasir_seg")
    metadata, body = card_for({"name": "kvasir_seg", "source": spec.source, "split": "test", "split_hash": "0123456789ab"})
    assert metadata["license"] == "other", "free-text dataset terms are not a Hub license id (never apache-2.0)"
    assert spec.license in body and f"- {spec.citation}" in body


@pytest.mark.parametrize(
    "dataset",
    [{"name": "my_folder", "source": "folder:/data/mine"}, {"name": "kvasir_seg", "source": "folder:/data/mine"}],
    ids=["unregistered", "ad-hoc-folder-named-like-a-registered-one"],
)
def test_card_of_an_unregistered_dataset_says_unknown(dataset):
    metadata, body = card_for({**dataset, "split": "test"})
    assert metadata["license"] == "unknown"
    assert "whose terms are: unknown" in body and "Jha et al." not in body
