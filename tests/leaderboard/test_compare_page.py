"""The comparison page from records alone (fabricated ones: fast): tables, paired tests, floors, costs, gaps."""

import pandas as pd
import pytest

from usemabench.cli import main
from usemabench.leaderboard.aggregate import aggregate
from usemabench.leaderboard.bench import Identity
from usemabench.leaderboard.compare import Missing, compare_page, page_markdown, paired_tests
from usemabench.leaderboard.stats import nonzero_pairs, paired_wilcoxon, smallest_wilcoxon_p
from usemabench.leaderboard.store import load_records
from usemabench.reports.compare_html import compare_html


@pytest.fixture(scope="module")
def page(fabricated_records):
    leaderboard = aggregate(load_records(fabricated_records), reference="usema_s")
    missing = [Missing("unet on toy, seed 3: no record", "usemabench run --model unet --dataset toy --protocol quick --seed 3")]
    return compare_page(leaderboard, "unet", ["usema_s", "transunet"], "quick", missing)


def test_the_page_sets_the_model_beside_each_reference(page):
    markdown = page_markdown(page)
    assert markdown.startswith("# unet vs usema_s, transunet · protocol quick\n")
    assert "|   | unet | usema_s | transunet |" in markdown
    assert "- unet: 4 evaluated run(s) (4 from your records folder)" in markdown  # 3 on toy, 1 on other
    assert "- unet on toy, seed 3: no record: `usemabench run --model unet --dataset toy --protocol quick --seed 3`" in markdown
    assert markdown.index("## Missing") < markdown.index("## toy · quick")  # what is absent comes first
    assert "| 64×64 | unet | 2.9M | 9.8 MiB | 0.33 | 1.75× | 0.8× |" in markdown  # MACs per pixel 700 vs 400


def test_paired_tests_are_over_shared_cases_with_holm_and_the_exact_floor(fabricated_records):
    board = next(board for board in aggregate(load_records(fabricated_records)).groups if board.dataset == "toy")
    tests = paired_tests(board, "unet", ["usema_s", "transunet"]).set_index("reference")
    scores = board.case_scores.pivot(index="case_id", columns="model", values="dice")
    expected_p = paired_wilcoxon(scores["unet"], scores["usema_s"])
    assert tests.at["usema_s", "cases"] == 10 and tests.at["usema_s", "p"] == pytest.approx(expected_p)
    assert tests.at["usema_s", "p_min"] == smallest_wilcoxon_p(10) == pytest.approx(2 / 1024)
    assert tests["p_holm"].max() == pytest.approx(min(1.0, 2 * tests["p"].min())) or tests["p_holm"].ge(tests["p"]).all()
    assert tests.at["usema_s", "delta_dice"] == pytest.approx((scores["unet"] - scores["usema_s"]).mean())
    # umamba_bot is not asked for; transunet ran 2 of 3 seeds: the per-seed spread uses the seeds both have.
    assert tests.at["transunet", "seeds"] == 2 and "umamba_bot" not in tests.index


def test_five_cases_state_the_floor_in_words():
    assert smallest_wilcoxon_p(5) == 0.0625 == paired_wilcoxon([0.9, 0.8, 0.7, 0.6, 0.5], [0.1] * 5)
    assert nonzero_pairs([1.0, 2.0, float("nan")], [1.0, 1.0, 1.0]) == 1


def test_the_html_page_folds_the_conventions_and_shows_commands_as_code(page):
    html = compare_html(page)
    assert "<details class=\"how-to-read\"><summary>How to read this page</summary>" in html
    assert "<code>usemabench run --model unet --dataset toy --protocol quick --seed 3</code>" in html
    assert html.count("<table") == sum(block.kind == "table" for block in page) == 6


def _row(**changes) -> pd.Series:
    row = {"model": "m", "dataset": "d", "protocol_hash": "p", "split_hash": "s", "model_config_hash": "c", "data_hash": "x"}
    return pd.Series({**row, **changes})


@pytest.mark.parametrize("field", ["model", "dataset", "protocol_hash", "split_hash", "model_config_hash", "data_hash"])
def test_a_record_matches_only_with_every_hash_equal(field):
    identity = Identity("m", "d", "p", "s", "x", "c", (64, 64), "fp32", 1, 2)
    assert identity.matches(_row())
    assert not identity.matches(_row(**{field: "other"}))
    assert not identity.matches(_row(data_hash=None))  # a record without a data hash is no match for data with one


def test_compare_refuses_an_unknown_model_in_one_line(tmp_path, capsys):
    assert main(["compare", "my_nett", "--records-dir", str(tmp_path), "--no-run"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("usemabench compare: error:") and "my_nett" in err and len(err.strip().splitlines()) == 1
