"""Batched data preparation on the device: CIFAR augmentation and per-channel normalisation.

The standard CIFAR augmentation (He et al., 2016, section 4.2) pads each image by 4 zero pixels,
takes a random crop of the original size and flips it horizontally with probability 1/2. Here a
whole uint8 batch is augmented at once: it is padded once and every image's crop is gathered with
advanced indexing at its own offset (no per-image Python loop, no PIL). The random draws come from
a :class:`torch.Generator` (on the CPU), so a seed fixes every crop and flip.

:func:`make_prepare` bundles augmentation and normalisation into the ``prepare`` callable the
training loop (:func:`cnnlab.training.fit`) applies to every batch. Augmentation transforms images
only, so it is for classification; segmentation trainers (mask targets) use ``augment=False``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cnnlab.errors import UserError

PADDING = 4


def sample_crop_flip(
    n: int, padding: int, gen: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw crop offsets ``top, left`` in ``[0, 2 * padding]`` and ``flip`` flags for ``n`` images (CPU tensors)."""
    top = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    return top, left, flip


def crop_and_flip(
    images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, padding: int = PADDING
) -> torch.Tensor:
    """Zero-pad ``images`` ``[N, C, H, W]`` by ``padding`` and cut out each image's ``H x W`` window.

    Image ``i`` becomes ``padded[i, :, top[i]:top[i]+H, left[i]:left[i]+W]``, mirrored left-right
    when ``flip[i]``. Works for any dtype and device; the result is contiguous (NCHW).
    """
    _, _, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    return _windows(padded, top, left, height, width, flip)


def _windows(
    images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, height: int, width: int,
    flip: torch.Tensor | None = None,
) -> torch.Tensor:
    """Image ``i``'s ``height x width`` window at ``top[i], left[i]`` (mirrored where ``flip[i]``), gathered for the
    whole batch with one advanced index (no per-image loop); the offsets may live on the CPU."""
    n, device = images.shape[0], images.device
    rows = top.to(device)[:, None] + torch.arange(height, device=device)  # [N, H]
    cols = torch.arange(width, device=device).expand(n, width)
    if flip is not None:
        cols = torch.where(flip.to(device)[:, None], cols.flip(1), cols)
    cols = cols + left.to(device)[:, None]  # [N, W]
    batch = torch.arange(n, device=device)[:, None, None, None]
    channels = torch.arange(images.shape[1], device=device)[None, :, None, None]
    return images[batch, channels, rows[:, None, :, None], cols[:, None, None, :]]


def _share(shard: tuple[int, int] | None, n: int) -> tuple[int, slice]:
    """``(images to draw for, rows of those draws that this batch of n gets)``: with ``shard=(start, total)`` (one
    rank's rows of a global batch under torchrun) every rank draws for the whole batch, so the draws do not depend
    on the number of processes; without, the batch is all there is."""
    start, total = shard or (0, n)
    return total, slice(start, start + n)


def random_crop_flip(
    images: torch.Tensor, gen: torch.Generator | None, padding: int = PADDING, shard: tuple[int, int] | None = None
) -> torch.Tensor:
    """Random ``padding``-pixel zero-padded crop plus random horizontal flip of every image in the batch
    (``shard``: see :func:`random_window`)."""
    total, rows = _share(shard, images.shape[0])
    top, left, flip = (draw[rows] for draw in sample_crop_flip(total, padding, gen))
    return crop_and_flip(images, top, left, flip, padding)


def random_window(
    x: torch.Tensor, size: int, gen: torch.Generator | None, shard: tuple[int, int] | None = None
) -> torch.Tensor:
    """A random ``size x size`` window of every image of the batch ``x`` ``[N, C, H, W]`` (any dtype).

    The cheap early epochs of progressive resizing (``TrainConfig.small_crop_epochs``): a convolutional
    net with global average pooling accepts any input size, a window keeps the objects' scale in pixels
    (unlike downsampling, so the later full-size epochs and the evaluation see objects at the scale the
    filters learnt), and the convolutions cost ``(size / H) * (size / W)`` of a full image. Offsets are
    drawn on the CPU from ``gen``; with ``shard=(start, total)`` for all ``total`` images of the global
    batch, and ``x`` (rows ``start ...``) gets its rows' offsets, as :class:`Prepare` does.
    """
    _, _, height, width = x.shape
    total, rows = _share(shard, x.shape[0])
    top = torch.randint(0, height - size + 1, (total,), generator=gen)[rows]
    left = torch.randint(0, width - size + 1, (total,), generator=gen)[rows]
    return _windows(x, top, left, size, size)


class Prepare:
    """Turns a uint8 batch ``[N, C, H, W]`` on the device into normalised float32 network input.

    ``prepare(x, train, gen)``: with ``augment`` and ``train`` the batch is randomly cropped (``padding``
    zero pixels each side, 4 in He et al.; 0 = flips only) and flipped first (draws from ``gen``); then
    ``(x / 255 - mean) / std`` per channel. With ``channels_last`` the result is in channels-last memory
    format (same shape).

    ``shard=(start, total)`` says that ``x`` holds rows ``start ... start + len(x) - 1`` of a batch of
    ``total`` images (one rank's share under torchrun): the crops and flips are drawn for all ``total``
    images, as for the whole batch, and ``x`` gets its rows' draws.
    """

    def __init__(
        self, mean: Sequence[float], std: Sequence[float], augment: bool, channels_last: bool, padding: int = PADDING
    ) -> None:
        mean = [float(v) for v in mean]
        std = [float(v) for v in std]
        if len(mean) != len(std) or not mean:
            raise UserError(f"normalisation mean {mean} and std {std} need one value per channel: fix the manifest")
        if min(std) <= 0:
            raise UserError(f"normalisation std {std} must be positive: recompute the dataset manifest")
        # (x / 255 - mean) / std  ==  x * scale + shift
        self.scale = torch.tensor([1.0 / (255.0 * s) for s in std]).view(1, -1, 1, 1)
        self.shift = torch.tensor([-m / s for m, s in zip(mean, std)]).view(1, -1, 1, 1)
        self.augment = augment
        self.channels_last = channels_last
        self.padding = padding

    def __call__(
        self, x: torch.Tensor, train: bool = False, gen: torch.Generator | None = None,
        shard: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.ndim != 4:
            raise ValueError(f"prepare expects uint8 images [N, C, H, W], got {x.dtype} {tuple(x.shape)}")
        if x.shape[1] != self.scale.shape[1]:
            raise UserError(
                f"images have {x.shape[1]} channel(s) but the normalisation has {self.scale.shape[1]}: "
                "use the mean/std of the same dataset"
            )
        if train and self.augment:
            x = random_crop_flip(x, gen, self.padding, shard)
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        out = x.to(dtype=torch.float32, memory_format=memory_format)
        return out.mul_(self.scale.to(x.device)).add_(self.shift.to(x.device))

    def __repr__(self) -> str:
        return (f"Prepare(channels={self.scale.shape[1]}, augment={self.augment}, padding={self.padding}, "
                f"channels_last={self.channels_last})")


def make_prepare(
    mean: Sequence[float], std: Sequence[float], augment: bool, channels_last: bool, padding: int = PADDING
) -> Prepare:
    """The ``prepare(x_uint8, train, gen) -> float`` callable for :func:`cnnlab.training.fit`.

    ``mean``/``std`` are per-channel values in ``[0, 1]`` units (the manifest's ``train_mean``/``train_std``);
    ``padding``: the crops' zero padding in pixels (crops shift each image by up to ``padding`` each way).
    """
    return Prepare(mean, std, augment, channels_last, padding)
