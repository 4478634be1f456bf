"""cnnlab: residual vs plain CNNs, fully convolutional surgery and Grad-CAM, orchestrated by DVC."""

__version__ = "0.1.0"
