"""Metrics: classification, segmentation, localisation."""
