"""Model definitions: the CIFAR plain/residual family, the MNIST CNN and its FCN surgery."""
