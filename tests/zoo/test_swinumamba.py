"""Swin-UMamba's parameter count against its reference code's configuration, summed layer by layer from the
constructor of `SwinUMamba.py` (JiarunLiu/Swin-UMamba, read, not run: it needs mamba-ssm's CUDA kernels)."""

from __future__ import annotations

import math

import pytest

from usemabench.zoo import parameter_count
from usemabench.zoo.swinumamba import PAPER_CONFIG, SMALL


def reference_parameter_count(in_channels: int, classes: int, widths, depths, d_state: int) -> int:
    def vss_block(dim: int) -> int:  # LayerNorm + SS2D (in_proj, depthwise conv, 4 x/dt projections, A, D, out_norm, out_proj)
        inner, rank = 2 * dim, math.ceil(dim / 16)
        return (2 * dim + dim * 2 * inner + inner * 9 + inner + 4 * (rank + 2 * d_state) * inner + 4 * inner * rank
                + 4 * inner + 4 * inner * d_state + 4 * inner + 2 * inner + inner * dim)

    def residual(cin: int, cout: int) -> int:  # MONAI UnetResBlock: two bias-free 3x3 convs, 1x1 when widths differ
        return 9 * cin * cout + 9 * cout * cout + (cin * cout if cin != cout else 0)

    stem = in_channels * widths[0] * 49 + widths[0] + 2 * widths[0]  # 7x7 conv with bias, affine InstanceNorm
    embed = widths[0] * widths[1] * 4 + widths[1] + 2 * widths[1]  # 2x2 conv with bias, LayerNorm
    stages = sum(depth * vss_block(dim) for dim, depth in zip(widths[1:], depths))
    merges = sum(2 * 4 * dim + 4 * dim * 2 * dim for dim in widths[1:4])
    skips = sum(residual(cin, cout) for cin, cout in zip((in_channels, *widths[:4]), widths))
    ups = sum(4 * cin * cout + residual(2 * cout, cout) for cin, cout in zip((widths[4], *widths[4:0:-1]), widths[::-1]))
    heads = sum(width * classes + classes for width in widths[:4])
    return stem + embed + stages + merges + skips + ups + residual(widths[0], widths[0]) + heads


@pytest.mark.parametrize(("in_channels", "classes"), [(1, 14), (3, 2)])
def test_parameters_match_the_reference_configuration(in_channels: int, classes: int) -> None:
    expected = reference_parameter_count(in_channels, classes, PAPER_CONFIG["widths"], PAPER_CONFIG["depths"], PAPER_CONFIG["d_state"])
    assert parameter_count("swin_umamba", in_channels, classes) == expected


def test_the_paper_setting_has_59_89m_parameters() -> None:
    # AbdomenMRI: one channel, 13 organs + background.
    assert parameter_count("swin_umamba", 1, 14) == 59_889_368


def test_small_variant_is_the_same_design() -> None:
    assert parameter_count("swin_umamba_small", 1, 2) == reference_parameter_count(1, 2, SMALL["widths"], SMALL["depths"], SMALL["d_state"])
    assert parameter_count("swin_umamba_small", 1, 2) < 1_500_000
