"""U-Net (Ronneberger et al., 2015) for semantic segmentation, for any input size.

Chapter 16 derives a three-level U-Net in its cells; this is the same network for any
depth, with the skip connections and the upsampling (learned transposed convolution or
bilinear resize) as options for the chapter's ablations.

x: (N, C_in, H, W) -> logits (N, K, H, W) for K classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnbook._checks import check_bool, check_choice, check_int

__all__ = ["UPSAMPLING", "DoubleConv", "UNet"]

UPSAMPLING = ("transpose", "bilinear")


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions (padding 1), each followed by BatchNorm and ReLU.

    x: (N, C_in, H, W) -> (N, C_out, H, W). No bias: BatchNorm's shift replaces it.
    """

    def __init__(self, C_in: int, C_out: int) -> None:
        C_in = check_int("C_in", C_in, minimum=1)
        C_out = check_int("C_out", C_out, minimum=1)
        super().__init__(
            nn.Conv2d(C_in, C_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(C_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(C_out, C_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(C_out),
            nn.ReLU(inplace=True),
        )


class _Up(nn.Module):
    """Decoder step: double the resolution, match the skip's size, (concatenate), convolve.

    up: "transpose" (a learned 2x2 stride-2 transposed convolution) or "bilinear" (resize,
    then a 1x1 convolution to halve the channels; free of checkerboard artefacts).
    """

    def __init__(self, C_in: int, C_out: int, skip: bool, up: str) -> None:
        super().__init__()
        if up == "transpose":
            self.up = nn.ConvTranspose2d(C_in, C_out, kernel_size=2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(C_in, C_out, kernel_size=1),
            )
        self.skip = skip
        self.conv = DoubleConv(2 * C_out if skip else C_out, C_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        # odd sizes: pooling rounded down, so pad the upsampled map up to the skip's size
        dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
        if dh or dw:
            x = F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
        if self.skip:
            x = torch.cat([skip, x], dim=1)
        return self.conv(x)


class UNet(nn.Module):
    """A U-Net (Ronneberger et al., 2015) with ``depth`` poolings, for any input size.

    x: (N, in_channels, H, W) -> logits (N, num_classes, H, W).
    Level ``i`` of the encoder has ``base * 2**i`` channels; the bottleneck has
    ``base * 2**depth``. ``skip=False`` drops the skip connections (the decoder then sees
    only the upsampled coarse features), for the ablation in chapter 16.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 4,
        *,
        base: int = 16,
        depth: int = 3,
        skip: bool = True,
        up: str = "transpose",
    ) -> None:
        super().__init__()
        in_channels = check_int("in_channels", in_channels, minimum=1)
        num_classes = check_int("num_classes", num_classes, minimum=1)
        base = check_int("base", base, minimum=1)
        depth = check_int("depth", depth, minimum=1)
        skip = check_bool("skip", skip)
        check_choice("up", up, UPSAMPLING)
        widths = [base * 2**i for i in range(depth + 1)]
        self.skip = skip
        self.down = nn.ModuleList()
        C = in_channels
        for w in widths[:-1]:
            self.down.append(DoubleConv(C, w))
            C = w
        self.bottleneck = DoubleConv(widths[-2], widths[-1])
        self.ups = nn.ModuleList(
            _Up(widths[i + 1], widths[i], skip, up) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"x must have shape (N, C, H, W), got {tuple(x.shape)}")
        features = []
        for block in self.down:
            x = block(x)
            features.append(x)  # kept for the skips; also gives the sizes to restore
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, feature in zip(self.ups, reversed(features), strict=True):
            x = up(x, feature)
        return self.head(x)
