"""The two loops beside the model: inference (loading weights, the batched detector, its ONNX Runtime twin, dataset
evaluation) and training (`Trainer`)."""
from .deploy import OnnxDetector, export_onnx
from .detector import AMP_DTYPES, Detector, autocast, load_model, preprocess
from .evaluate import (
    evaluate,
    evenly_spaced,
    format_ap_table,
    json_safe,
    not_written_line,
    score_voc,
    write_evaluation,
    write_metrics,
)
from .loading import LoadedDetector, load_detector
from .runs import RUNS_ROOT, check_fresh_folder, default_output, find_resume, read_resume, run_checkpoint, run_finished
from .trainer import Trainer

__all__ = ["AMP_DTYPES", "Detector", "autocast", "load_model", "preprocess", "LoadedDetector", "OnnxDetector",
           "export_onnx", "load_detector", "evaluate", "evenly_spaced", "format_ap_table", "json_safe", "score_voc",
           "write_evaluation", "not_written_line", "write_metrics", "RUNS_ROOT", "check_fresh_folder", "default_output",
           "find_resume", "read_resume", "run_checkpoint", "run_finished", "Trainer"]
