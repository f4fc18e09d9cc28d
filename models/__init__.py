from .ssd import SSD, L2Norm, extra_layers, vgg_reduced_fc
from .weights import WeightsError, load_basenet, load_ssd_weights

__all__ = ["SSD", "L2Norm", "vgg_reduced_fc", "extra_layers", "load_basenet", "load_ssd_weights", "WeightsError"]
