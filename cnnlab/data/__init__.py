"""Data: sources (torchvision, local mirror, synthetic), the canonical on-disk format, segmentation."""
