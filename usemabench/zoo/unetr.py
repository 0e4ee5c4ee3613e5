"""MONAI's UNETR and SwinUNETR run in 2D (`spatial_dims=2`).

UNETR: Hatamizadeh et al., "UNETR: Transformers for 3D Medical Image Segmentation", WACV 2022. A ViT-B/16
(12 layers, 768 wide, global attention over all 16x16 patches) whose intermediate outputs feed a
convolutional decoder: the skips are `hidden_states[3]`, `[6]`, `[9]` (0-based), i.e. the outputs of
blocks 4, 7 and 10, plus the normed output of block 12. That is MONAI's indexing, one block later than the
paper's z3, z6, z9; we keep MONAI's. SwinUNETR: Hatamizadeh et al., "Swin UNETR: Swin Transformers for Semantic
Segmentation of Brain Tumors in MRI Images", BrainLes 2021: a Swin encoder (patch 2, window 7, shifted
windows) with the same style of decoder. Reference code: Project-MONAI/MONAI `networks/nets/unetr.py`,
`swin_unetr.py`; both papers are 3D, these are MONAI's own 2D instantiations.

MONAI's UNETR fixes `img_size` at construction: its position embeddings have (img_size/16)^2 entries and
its `proj_feat` reshapes tokens to that grid, so any other input size fails. `UNETR2d` keeps MONAI's
modules and state-dict keys and adds only a forward that resamples the position embeddings (bicubic) to
the input's token grid; at `img_size` it computes exactly what MONAI's forward computes.
"""

from __future__ import annotations

from typing import Any

from monai.networks.nets import UNETR, SwinUNETR
from timm.layers import resample_abs_pos_embed
from torch import Tensor

from usemabench.zoo.registry import register_model
from usemabench.zoo.unet import build_outside_meta

UNETR_PATCH_SIZE = 16  # fixed by MONAI's UNETR
UNETR_PAPER = "Hatamizadeh et al., UNETR: Transformers for 3D Medical Image Segmentation, WACV 2022"
UNETR_CODE = "https://github.com/Project-MONAI/MONAI (monai/networks/nets/unetr.py)"
SWINUNETR_PAPER = "Hatamizadeh et al., Swin UNETR: Swin Transformers for Semantic Segmentation of Brain Tumors in MRI Images, BrainLes 2021"
SWINUNETR_CODE = "https://github.com/Project-MONAI/MONAI (monai/networks/nets/swin_unetr.py)"


class UNETR2d(UNETR):
    """MONAI's UNETR in 2D that accepts any multiple of 16 by resampling its position embeddings.

    Args:
        in_channels, num_classes: input channels and output classes.
        img_size: the square size the position embeddings are learned for.
        **config: passed to MONAI's UNETR (feature_size, hidden_size, mlp_dim, num_heads, norm_name, ...).

    >>> model = UNETR2d(1, 4, img_size=256)
    >>> model.eval()(torch.randn(1, 1, 192, 320)).shape
    torch.Size([1, 4, 192, 320])
    """

    def __init__(self, in_channels: int, num_classes: int, img_size: int = 256, **config: Any) -> None:
        if img_size % UNETR_PATCH_SIZE:
            raise ValueError(f"UNETR img_size must be a multiple of {UNETR_PATCH_SIZE}, got {img_size}")
        super().__init__(in_channels, num_classes, img_size=img_size, spatial_dims=2, **config)
        self.grid_size = tuple(self.feat_size)

    def position_embeddings(self, grid: tuple[int, int]) -> Tensor:
        """MONAI's learned embeddings at their own grid, bicubically resampled to any other."""
        learned = self.vit.patch_embedding.position_embeddings
        if grid == self.grid_size:
            return learned
        return resample_abs_pos_embed(learned, list(grid), list(self.grid_size), num_prefix_tokens=0)

    def tokens_to_map(self, tokens: Tensor, grid: tuple[int, int]) -> Tensor:
        """(B, N, C) tokens -> (B, C, h, w) map: MONAI's `proj_feat` for a grid chosen per input."""
        return tokens.transpose(1, 2).reshape(tokens.shape[0], self.hidden_size, *grid)

    def forward(self, x_in: Tensor) -> Tensor:
        height, width = x_in.shape[-2:]
        if height % UNETR_PATCH_SIZE or width % UNETR_PATCH_SIZE:
            raise ValueError(f"UNETR needs height and width divisible by {UNETR_PATCH_SIZE}; got {height}x{width}")
        grid = (height // UNETR_PATCH_SIZE, width // UNETR_PATCH_SIZE)
        embedding = self.vit.patch_embedding
        tokens = embedding.patch_embeddings(x_in).flatten(2).transpose(1, 2)
        tokens = embedding.dropout(tokens + self.position_embeddings(grid))
        hidden_states = []
        for block in self.vit.blocks:
            tokens = block(tokens)
            hidden_states.append(tokens)
        last = self.vit.norm(tokens)
        # From here on MONAI's UNETR.forward, with the token grid of this input.
        enc1 = self.encoder1(x_in)
        enc2 = self.encoder2(self.tokens_to_map(hidden_states[3], grid))
        enc3 = self.encoder3(self.tokens_to_map(hidden_states[6], grid))
        enc4 = self.encoder4(self.tokens_to_map(hidden_states[9], grid))
        dec3 = self.decoder5(self.tokens_to_map(last, grid), enc4)
        dec2 = self.decoder4(dec3, enc3)
        dec1 = self.decoder3(dec2, enc2)
        return self.out(self.decoder2(dec1, enc1))


UNETR_RESOLUTION_POLICY = (
    "position embeddings learned for img_size/16 tokens per side (default 256 -> 16x16); other sizes use a "
    "bicubic (antialiased) resample computed in forward (MONAI's UNETR itself only takes img_size); inputs "
    "padded to a multiple of 16"
)
UNETR_RECONSTRUCTED = (
    "2D instance of the 3D paper model (MONAI spatial_dims=2), img_size 256",
    "position-embedding resampling for sizes other than img_size (not in MONAI or the paper)",
)


@register_model(
    family="attention-full",
    paper=UNETR_PAPER,
    code=UNETR_CODE,
    config=dict(img_size=256, feature_size=16, hidden_size=768, mlp_dim=3072, num_heads=12, norm_name="instance"),
    size_divisor=UNETR_PATCH_SIZE,
    size_policy="pad",
    resolution_policy=UNETR_RESOLUTION_POLICY,
    reconstructed=UNETR_RECONSTRUCTED,
    requires=("einops",),  # MONAI's ViT self-attention block imports einops when built
    test_variant="unetr_small",
)
def unetr(in_channels: int, num_classes: int, **config: Any) -> UNETR2d:
    """MONAI UNETR in 2D: ViT-B/16 (12 global-attention layers), skips from layers 3/6/9/12."""
    return UNETR2d(in_channels, num_classes, **config)


@register_model(
    family="attention-full",
    paper=UNETR_PAPER,
    code=UNETR_CODE,
    config=dict(img_size=64, feature_size=8, hidden_size=48, mlp_dim=96, num_heads=2, norm_name="instance"),
    size_divisor=UNETR_PATCH_SIZE,
    size_policy="pad",
    resolution_policy=UNETR_RESOLUTION_POLICY,
    reconstructed=UNETR_RECONSTRUCTED,
    requires=("einops",),  # MONAI's ViT self-attention block imports einops when built
    small=True,
)
def unetr_small(in_channels: int, num_classes: int, **config: Any) -> UNETR2d:
    """MONAI UNETR in 2D with a 48-wide ViT (MONAI fixes 12 layers): the CPU test variant."""
    return UNETR2d(in_channels, num_classes, **config)


SWINUNETR_DIVISOR = 32  # patch 2 and four 2x merges: MONAI checks divisibility by 2**5
SWINUNETR_RESOLUTION_POLICY = (
    "no absolute position embeddings (relative position bias in 7x7 windows); MONAI pads each stage's map to "
    "a multiple of the window; inputs padded to a multiple of 32"
)


def _swinunetr(in_channels: int, num_classes: int, **config: Any) -> SwinUNETR:
    return build_outside_meta(lambda: SwinUNETR(in_channels=in_channels, out_channels=num_classes, spatial_dims=2, **config))


@register_model(
    family="attention-window",
    paper=SWINUNETR_PAPER,
    code=SWINUNETR_CODE,
    config=dict(feature_size=48, depths=(2, 2, 2, 2), num_heads=(3, 6, 12, 24), window_size=7, use_v2=False),
    size_divisor=SWINUNETR_DIVISOR,
    size_policy="pad",
    resolution_policy=SWINUNETR_RESOLUTION_POLICY,
    reconstructed=("2D instance of the 3D paper model (MONAI spatial_dims=2); feature_size 48 as in the paper",),
    test_variant="swinunetr_small",
)
def swinunetr(in_channels: int, num_classes: int, **config: Any) -> SwinUNETR:
    """MONAI SwinUNETR in 2D: Swin-T-style encoder (window 7, shifted), feature size 48."""
    return _swinunetr(in_channels, num_classes, **config)


@register_model(
    family="attention-window",
    paper=SWINUNETR_PAPER,
    code=SWINUNETR_CODE,
    config=dict(feature_size=12, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=7, use_v2=False),
    size_divisor=SWINUNETR_DIVISOR,
    size_policy="pad",
    resolution_policy=SWINUNETR_RESOLUTION_POLICY,
    small=True,
)
def swinunetr_small(in_channels: int, num_classes: int, **config: Any) -> SwinUNETR:
    """MONAI SwinUNETR in 2D, feature size 12: the CPU test variant."""
    return _swinunetr(in_channels, num_classes, **config)
