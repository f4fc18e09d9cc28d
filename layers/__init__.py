from .box_utils import BoxCoder, cxcywh_to_xyxy, decode, encode, pairwise_box_iou, xyxy_to_cxcywh
from .matching import match_priors, pad_targets
from .multibox_loss import MultiBoxLoss
from .postprocessing import (
                          PaddedDetections,
                          PostProcessor,
                          greedy_nms,
                          postprocess,
                          postprocess_padded,
                          soft_nms,
                          unpad_detections,
)
from .prior_box import PriorBox

__all__ = ["PriorBox", "BoxCoder", "MultiBoxLoss", "PostProcessor", "PaddedDetections", "postprocess", "soft_nms",
           "greedy_nms", "postprocess_padded", "unpad_detections", "match_priors", "pad_targets", "encode", "decode",
           "cxcywh_to_xyxy", "xyxy_to_cxcywh", "pairwise_box_iou"]
