"""Swin-UNet's patch expanding layer, which VM-UNet's decoder reuses from the Swin-UNet code."""

from __future__ import annotations

from torch import Tensor, nn


class PatchExpand(nn.Module):
    """(B, H, W, in_dim) -> (B, scale*H, scale*W, out_dim): a bias-free Linear to scale^2 * out_dim channels,
    each token's channels rearranged into a scale x scale block of pixels, then LayerNorm.

    Both references' `PatchExpand` (scale 2) and `FinalPatchExpand_X4` (scale 4): rearrange
    'b h w (p1 p2 c) -> b (h p1) (w p2) c'.
    """

    def __init__(self, in_dim: int, out_dim: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.expand = nn.Linear(in_dim, scale * scale * out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: Tensor) -> Tensor:
        batch, height, width, _ = x.shape
        s = self.scale
        x = self.expand(x).reshape(batch, height, width, s, s, -1).permute(0, 1, 3, 2, 4, 5)
        return self.norm(x.reshape(batch, height * s, width * s, -1))
