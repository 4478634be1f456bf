"""Class names of the datasets, in label order: a leaf (no imports) that data, models and metrics share."""

MNIST_CLASSES = [str(d) for d in range(10)]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
#: segmented MNIST, one label per pixel: 0 = background, 1 + d = digit d
SEGMENT_CLASSES = ["background"] + MNIST_CLASSES
#: the binary target of the same masks: every digit class merged into one
BINARY_CLASSES = ["background", "digit"]
#: an FCN's target -> its class names in label order (label 0 is the background in both)
SEGMENT_TARGETS = {"digits": SEGMENT_CLASSES, "binary": BINARY_CLASSES}
