"""The NDS ResNet space (CLOSE §4.3): ``nds.NDSSpace`` over ``nds_arch.RESNET`` (basic blocks, 108^3 configs)."""
from .nds import NDSSpace
from .nds_arch import RESNET

SPACE = NDSSpace("nds-resnet", RESNET, "resnet")
