"""Segmented MNIST masks and multi-digit canvases."""

import torch

from cnnlab.data.segmentation import SEGMENT_CLASSES, digit_masks, make_canvases


def digits(n=30):
    images = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    images[:, 0, 8:20, 10:18] = 200  # a bright 12x8 block
    images[:, 0, 8, 10] = 100  # a dim pixel (below threshold 0.5)
    return images, torch.arange(n) % 10


def test_masks_follow_threshold_and_label():
    images, labels = digits()
    masks = digit_masks(images, labels, 0.5)
    assert masks.dtype == torch.uint8 and masks.shape == (30, 28, 28)
    assert masks[3, 9, 11] == 4 and masks[3, 8, 10] == 0 and masks[3, 0, 0] == 0
    assert torch.equal(masks > 0, images[:, 0] > 127.5)
    assert int(masks.max()) <= 10 and len(SEGMENT_CLASSES) == 11
    assert torch.equal(digit_masks(images, labels, 0.3)[3, 8, 10], torch.tensor(4, dtype=torch.uint8))


def test_canvases_shapes_consistency_and_determinism():
    images, labels = digits()
    make = lambda offset: make_canvases(images, labels, 20, 2, 3, 0.5, 0.3, offset, torch.Generator().manual_seed(1))  # noqa: E731
    c = make(0)
    assert c.images.shape == (20, 1, 56, 84) and c.masks.shape == (20, 56, 84) and c.digits.shape == (20, 6)
    assert torch.all((c.digits >= 0).sum(dim=1) >= 1), "every canvas holds a digit"
    # masks agree with the image threshold and with the digit in each cell
    assert torch.equal(c.masks > 0, c.images[:, 0] > 127.5)
    for m in range(20):
        for cell in range(6):
            r, col = divmod(cell, 3)
            region = c.masks[m, r * 28 : (r + 1) * 28, col * 28 : (col + 1) * 28]
            digit = int(c.digits[m, cell])
            present = set(region.unique().tolist()) - {0}
            assert present == (set() if digit < 0 else {digit + 1})
            inst = c.instances[m, r * 28 : (r + 1) * 28, col * 28 : (col + 1) * 28]
            assert set(inst.unique().tolist()) - {0} == (set() if digit < 0 else {cell + 1})
    assert torch.equal(c.images, make(0).images)
    shifted = make(4)
    assert not torch.equal(shifted.images, c.images)
    assert torch.equal(shifted.masks > 0, shifted.images[:, 0] > 127.5)
