"""The two classifier families of the plain-vs-residual matrix and how a depth picks one: a leaf (no imports)
that the models, the pipeline's names and the tables share.

The matrix of params.yaml is a full product of archs, depths, variants and seeds (all DVC's ``matrix`` can
express), so the family rides on the depth axis: 18 is not of the form 6n + 2, and a depth names one network.
"""

SIX_N_PLUS_2 = "6n+2"  # He et al. (2016), section 4.2: cnnlab.models.cifar
RESNET18 = "resnet18"  # the CIFAR ResNet-18 on torchvision's blocks: cnnlab.models.resnet18
FAMILIES = (SIX_N_PLUS_2, RESNET18)
RESNET18_DEPTH = 18
LABELS = {SIX_N_PLUS_2: "6n+2", RESNET18: "ResNet-18"}


def family_of(depth: int) -> str:
    """``"resnet18"`` for depth 18, else ``"6n+2"`` (whose config checks that the depth is one)."""
    return RESNET18 if depth == RESNET18_DEPTH else SIX_N_PLUS_2


def model_label(arch: str, depth: int) -> str:
    """How figures and tables name a network: ``"plain-20"``, ``"residual-56"``; ResNet-18 as ``"resnet18"``
    (skips on, the residual net) or ``"resnet18-noskip"`` (the plain one), as its config names it."""
    if family_of(depth) == RESNET18:
        return "resnet18" if arch == "residual" else "resnet18-noskip"
    return f"{arch}-{depth}"


def net_label(depth: int) -> str:
    """How titles and captions name the network of a depth: ``"depth 20"``, or ``"ResNet-18"``."""
    return LABELS[RESNET18] if family_of(depth) == RESNET18 else f"depth {depth}"
