"""Inference beside the model: loading weights, the batched detector and dataset evaluation."""
from .detector import AMP_DTYPES, Detector, autocast, load_model, preprocess
from .evaluate import evaluate, evenly_spaced, format_ap_table, json_safe, score_voc, write_metrics

__all__ = ["AMP_DTYPES", "Detector", "autocast", "load_model", "preprocess", "evaluate", "evenly_spaced",
           "format_ap_table", "json_safe", "score_voc", "write_metrics"]
