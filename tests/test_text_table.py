"""The listing commands' plain-text table."""

from usemabench.text_table import format_table


def test_columns_are_padded_to_the_widest_cell_and_the_header_underlined():
    table = format_table([("name", "family"), ("usema_s", "usema"), ("unet", "")])
    assert table.splitlines() == ["name     family", "-------  ------", "usema_s  usema", "unet"]
