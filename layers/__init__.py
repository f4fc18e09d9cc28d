from .box_utils import batched_box_iou, cxcywh_to_xyxy, decode, encode, xyxy_to_cxcywh
from .detection import Detect, PostProcessor, postprocess, soft_nms
from .matching import match_priors, pad_targets
from .multibox_loss import MultiBoxLoss
from .prior_box import PriorBox

__all__ = ["PriorBox", "MultiBoxLoss", "PostProcessor", "Detect", "postprocess", "soft_nms", "match_priors",
           "pad_targets", "encode", "decode", "cxcywh_to_xyxy", "xyxy_to_cxcywh", "batched_box_iou"]
