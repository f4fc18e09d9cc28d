"""The one config resolution: `resolve()` builds the frozen `Config` every entry point uses, with one precedence:
    Config defaults < DATASET_DEFAULTS[dataset] < a preset (the CPU main command's) < a checkpoint's config
    < flags given on the command line.
The resolved config is stored in every checkpoint (as a plain dict) so that eval.py, detect.py, the ONNX export
and the notebook rebuild the same model from it."""
import re

from config import (
    BACKBONES,
    COCO_CLASSES,
    COCO_SET,
    DATASET_DEFAULTS,
    GROUP_OF,
    MODEL_KEYS,
    OWN_DATA_BACKBONE,
    RENAMED,
    VOC_CLASSES,
    Config,
    ModelConfig,
    SolverConfig,
)
from config_checks import check
from config_flags import flag
from utils.errors import ConfigError


def resolve(flags: dict = None, checkpoint_config: dict = None, default_dataset: str = "VOC",
            preset: dict = None) -> Config:
    """The one config resolution. `flags`: Config keys given on the command line (None values = not given);
    `checkpoint_config`: the config stored in a checkpoint (any version); `preset`: e.g. CPU_CHECK.

    Precedence: Config defaults < DATASET_DEFAULTS[dataset] < preset < checkpoint < flags. The dataset is the
    flag's, else the checkpoint's, else `default_dataset`. A checkpoint of another dataset contributes only the
    keys that define its network (MODEL_KEYS). Raises ConfigError naming the flag for any value out of range."""
    flags = {RENAMED.get(k, k): v for k, v in (flags or {}).items() if v is not None}
    saved = Config.from_dict(checkpoint_config).to_dict() if checkpoint_config else {}
    dataset = flags.get("dataset") or saved.get("dataset") or default_dataset
    if dataset not in DATASET_DEFAULTS:
        raise ConfigError(f"--dataset must be one of {', '.join(DATASET_DEFAULTS)} (got {dataset!r})")
    if dataset == "shapes":
        ignored = [flag(k) for k in ("dataset_root", "class_names") if k in flags]
        ignored += [flag(k) for k in ("sets", "test_sets") if set(flags.get(k, ())) - {"train", "test"}]
        if ignored:
            raise ConfigError(f"{', '.join(ignored)}: the built-in shapes dataset reads no files and has fixed "
                              f"classes and the splits train and test; drop {' '.join(ignored)} or choose "
                              f"--dataset VOC or COCO")
    values = dict(DATASET_DEFAULTS[dataset], dataset=dataset)
    values.update(preset or {})
    resumed = bool(saved) and saved["dataset"] == dataset  # the checkpoint's training settings come back
    if saved:
        values.update(saved if resumed else {k: saved[k] for k in MODEL_KEYS})
    values.update(flags)
    own = BACKBONES[OWN_DATA_BACKBONE]
    vgg_only = flags.get("size", own.sizes[0]) not in own.sizes or flags.get("batch_norm")  # SSD300/512 asked for
    if not saved and "backbone" not in values and own_data(values) and not vgg_only:
        values["backbone"] = OWN_DATA_BACKBONE
    spec = BACKBONES.get(values.get("backbone", ModelConfig.backbone))
    if spec and not saved:  # a new run: the backbone's own size, ImageNet weights, matching and recipe
        if "matching" not in flags:
            values["matching"] = spec.matching
        if spec.name != "vgg16":
            if "size" not in flags:
                values["size"] = spec.sizes[0]
            if "basenet" not in flags and values.get("basenet", SolverConfig.basenet) == SolverConfig.basenet:
                values["basenet"] = spec.weights
        if str(values.get("basenet", SolverConfig.basenet)).lower() != "none":
            values.update({k: v for k, v in spec.finetune.items() if k not in flags and k not in (preset or {})})
    elif spec and "matching" not in flags and not resumed:
        values["matching"] = spec.matching
    unknown = sorted(set(values) - set(GROUP_OF))
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown}")
    return check(Config.from_dict(values))


def own_data(values: dict) -> bool:
    """Whether settings name a set of the user's own classes rather than PASCAL VOC, COCO or the shapes set: a YOLO
    folder, a class list of its own, or COCO-format sets not named as COCO's (train2017, val2014, ...)."""
    dataset, names = values["dataset"], tuple(values.get("class_names") or ())
    if dataset == "YOLO":
        return True
    if dataset == "VOC":
        return names != VOC_CLASSES
    if dataset == "COCO":
        return (bool(names) and names != COCO_CLASSES) or not all(
            re.fullmatch(COCO_SET, name) for name in (*values["sets"], *values["test_sets"]))
    return False


def config_for(dataset: str, **flags) -> Config:
    """`resolve` for one dataset without a checkpoint (tests, benchmarks, the notebook)."""
    return resolve(dict(flags, dataset=dataset))


def changed_settings(before: Config, after: Config) -> list:
    """'--flag old -> new' for every setting that differs (how a resumed run reports the flags given again)."""
    one, two = before.to_dict(), after.to_dict()
    return [f"{flag(k)} {one[k]} -> {two[k]}" for k in one if one[k] != two[k]]
