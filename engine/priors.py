"""The priors a run trains with: how many training boxes the layout can match (told at start), and with
--priors fit, or auto on your own classes, a layout fitted to them (layers/prior_fit.py) that the checkpoint carries.
"""
import logging
from typing import NamedTuple

import torch

from config import BACKBONES, COCO_CLASSES, SHAPES_CLASSES, VOC_CLASSES, Config, prior_table, table_layout
from data import normalised_boxes
from layers.prior_fit import Coverage, PriorFit, breakdown, coverage_of, fit_layout

log = logging.getLogger("ssd")

# `--priors auto` keeps the paper's layout for these class lists, so the published recipes reproduce.
BENCHMARK_CLASSES = {tuple(VOC_CLASSES): "PASCAL VOC's", tuple(COCO_CLASSES): "COCO's",
                     tuple(SHAPES_CLASSES): "the shapes set's"}
# A fit leaving more than this share of the boxes, or of one class's, unmatched says which layouts would match more.
ARCHITECTURE_LIMIT = 0.9


class PriorReport(NamedTuple):
    boxes: torch.Tensor  # [N, 4] the training boxes, normalised corners of the square input
    labels: torch.Tensor  # [N]
    layout: Coverage  # of cfg's layout, over every box
    fit: PriorFit
    fitted: Coverage  # of the fit's layout, over every box
    fitted_best_iou: torch.Tensor  # [N]
    layout_best_iou: torch.Tensor  # [N]
    images: int  # the images the boxes come from (the built-in shapes set: its first ones)
    images_in_set: int


def fit_wanted(cfg: Config) -> tuple:
    """-> (whether a new run of cfg trains with fitted priors, why: a phrase for the log)."""
    if cfg.model.min_sizes:
        return False, "--min-sizes given"
    if cfg.model.priors == "layout":
        return False, "--priors layout"
    if cfg.model.priors == "fit":
        return True, "--priors fit"
    benchmark = BENCHMARK_CLASSES.get(tuple(cfg.model.class_names))
    if benchmark:
        return False, f"--priors auto keeps the paper's layout for {benchmark} classes; --priors fit to fit them"
    return True, "--priors auto, your own classes"


def prior_report(cfg: Config, source, use_difficult: bool = True, unreadable=()) -> PriorReport:
    """Coverage of cfg's prior layout over the source's boxes (those of the images at `unreadable` left out), and
    the layout fitted to them."""
    boxes, labels, images = normalised_boxes(source, use_difficult, unreadable=unreadable)
    layout_coverage, layout_best = coverage_of(boxes, cfg.model.prior_layout, cfg.solver.overlap_thresh)
    fit = fit_layout(boxes, cfg.model.prior_layout, cfg.solver.overlap_thresh, seed=0)
    fitted, fitted_best = coverage_of(boxes, fit.layout, cfg.solver.overlap_thresh)
    return PriorReport(boxes, labels, layout_coverage, fit, fitted, fitted_best, layout_best, images, len(source))


def percent(share: float) -> str:
    return "-" if share != share else f"{100 * share:.1f}%"


def coverage_line(cfg: Config, report: PriorReport) -> str:
    what = f"{cfg.model.backbone} {cfg.model.size} layout" + (" with --min-sizes" if cfg.model.min_sizes else "")
    fitted = percent(report.fitted.covered) if report.fit.kind != "layout" else \
        f"{percent(report.fitted.covered)} (the layout is already the best fit)"
    sample = f" (of the first {report.images:,} of {report.images_in_set:,} images)" \
        if report.images < report.images_in_set else ""
    return (f"prior coverage (IoU >= {cfg.solver.overlap_thresh:g}): {percent(report.layout.covered)} of "
            f"{report.layout.boxes:,} boxes{sample} with the {what}; fitted: {fitted}")


def describe_layout(layout: dict) -> str:
    sizes = " ".join(f"{v:g}" for v in layout["min_sizes"])
    ratios = " ".join("/".join(f"{r:g}" for r in rs) for rs in layout["aspect_ratios"])
    return f"sizes {sizes} px, aspect ratios {ratios}"


def coverage_table(cfg: Config, report: PriorReport, class_names) -> list:
    """Lines: per class and per size bucket, the boxes, the layout's and the fit's coverage and median best IoU."""
    layout_rows = breakdown(report.layout_best_iou, report.labels, report.boxes, cfg.model.size, class_names,
                            cfg.solver.overlap_thresh)
    fitted_rows = breakdown(report.fitted_best_iou, report.labels, report.boxes, cfg.model.size, class_names,
                            cfg.solver.overlap_thresh)
    width = max(len(name) for name, _ in layout_rows)
    lines = [f"  {'':<{width}}   boxes  layout (median IoU)  fitted (median IoU)"]
    for (name, layout), (_, fitted) in zip(layout_rows, fitted_rows):
        if layout.boxes:
            lines.append(f"  {name:<{width}} {layout.boxes:>7}  {percent(layout.covered):>6} ({layout.median_iou:.2f})"
                         f"         {percent(fitted.covered):>6} ({fitted.median_iou:.2f})")
    return lines


def finer_layouts(cfg: Config, report: PriorReport, class_names, alternatives: bool = True) -> list:
    """Where the fit leaves many boxes (or most of a class) unmatched, the architecture rather than the sizes is the
    limit: one line that says so and, with `alternatives`, what a fit of each layout with a finer first feature map
    would reach. -> lines."""
    threshold = cfg.solver.overlap_thresh

    def covered(best, label=None):
        best = best if label is None else best[report.labels == label]
        return float((best >= threshold).float().mean()) if len(best) else 1.0

    short = [label for label in range(len(class_names)) if covered(report.fitted_best_iou, label) < ARCHITECTURE_LIMIT]
    if report.fitted.covered >= ARCHITECTURE_LIMIT and not short:
        return []

    def per_class(best) -> str:
        return " (" + ", ".join(f"{class_names[label]} {percent(covered(best, label))}" for label in short) + ")" \
            if short else ""

    def shares(best) -> str:
        return percent(covered(best)) + per_class(best)
    lines = []
    own = cfg.model.prior_layout["steps"][0] / cfg.model.size
    for backbone, sizes in ((name, spec.sizes) for name, spec in BACKBONES.items()) if alternatives else ():
        for size in sizes:
            layout = table_layout(prior_table(backbone, cfg.data.dataset, size))
            if layout["steps"][0] / size < own:
                fit = fit_layout(report.boxes, layout, threshold, seed=0)
                lines.append(f"  --backbone {backbone} --size {size} (first map's cells {layout['steps'][0]:g} px "
                             f"apart): fitted {shares(coverage_of(report.boxes, fit.layout, threshold)[1])}")
    step = cfg.model.prior_layout["steps"][0]
    lines.insert(0, f"with fitted priors {percent(covered(report.fitted_best_iou))} of the boxes reach IoU "
                    f"{threshold:g}{per_class(report.fitted_best_iou)}: the first feature map's cells are "
                    f"{step:g} px apart at --size {cfg.model.size}, too coarse for the smallest objects"
                 + ("; fitted layouts with a finer first map:" if lines else
                    "" if not alternatives else " (no layout here has a finer first map)"))
    return lines


def choose_priors(cfg: Config, source) -> Config:
    """A new run's prior layout, logged: the coverage line, then fitted priors (cfg.model.prior_layout replaced) or why
    the layout stays."""
    wanted, why = fit_wanted(cfg)
    report = prior_report(cfg, source, cfg.data.train_difficult)
    log.info("%s", coverage_line(cfg, report))
    if wanted and report.fit.kind != "layout":
        log.info("priors: fitted to the %s training boxes in %.1f s (%s): %s; the checkpoint carries them",
                 f"{report.layout.boxes:,}", report.fit.seconds, why, describe_layout(report.fit.layout))
        cfg_used = cfg.replace(prior_layout=report.fit.layout)
    else:
        log.info("priors: the layout's (%s)", why if not wanted else "the fit matches no more boxes")
        cfg_used = cfg
    for line in finer_layouts(cfg, report, cfg.model.class_names, alternatives=False) if wanted else []:
        log.info("%s (python -m scripts.check_data with the same flags: what other layouts reach)", line)
    return cfg_used
