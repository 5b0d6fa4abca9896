"""The NDS ResNeXt-A space (CLOSE §4.3): ``nds.NDSSpace`` over ``nds_arch.RESNEXTA`` (bottlenecks, 225^3 configs)."""
from .nds import NDSSpace
from .nds_arch import RESNEXTA

SPACE = NDSSpace("nds-resnexta", RESNEXTA, "resnexta")
