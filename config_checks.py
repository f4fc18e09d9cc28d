"""The checks of settings: each value in range (`check`, which `resolve` runs), and a checkpoint's network settings
against the flags given with it (`check_model_flags`)."""
from config import BACKBONES, CHOICES, FILE_CLASSES, PRIOR_KEYS, PRIORS, Config, table_layout
from config_flags import flag
from utils.errors import ConfigError

# Range checks: key -> the lowest allowed value
MINIMUM = {"batch_size": 1, "max_iter": 1, "workers": 0, "warmup_iters": 0, "checkpoint_every": 0, "eval_every": 0,
           "eval_limit": 0, "log_every": 1, "keep_checkpoints": 1, "max_bad_steps": 1, "top_k": 1,
           "pre_nms_top_k": 1, "shapes_train_images": 1, "shapes_test_images": 1, "graph_nms_rounds": 1,
           "lr_reference_batch": 1, "neg_pos": 1, "threads": 0}


def check_ranges(cfg: Config):
    for key, lowest in MINIMUM.items():
        value = cfg.setting(key)
        if not isinstance(value, int) or value < lowest:
            raise ConfigError(f"{flag(key)} must be a whole number >= {lowest} (got {value!r})")
    for key, allowed in CHOICES.items():
        if cfg.setting(key) not in allowed:
            raise ConfigError(f"{flag(key)} must be one of {', '.join(map(str, allowed))} (got {cfg.setting(key)!r})")
    for key in ("lr", "soft_nms_sigma", "expand_max_ratio", "backbone_lr"):
        if not cfg.setting(key) > 0:
            raise ConfigError(f"{flag(key)} must be > 0 (got {cfg.setting(key)!r})")
    for key in ("score_thresh", "nms_thresh", "overlap_thresh", "momentum", "gamma"):
        if not 0 <= cfg.setting(key) <= 1:
            raise ConfigError(f"{flag(key)} must be between 0 and 1 (got {cfg.setting(key)!r})")
    if cfg.solver.weight_decay < 0:
        raise ConfigError(f"--weight-decay must be >= 0 (got {cfg.solver.weight_decay!r})")


def check(cfg: Config) -> Config:
    """`cfg` if every setting is in range and they fit together, else ConfigError naming the flag and the allowed
    values."""
    check_ranges(cfg)
    if cfg.model.size not in BACKBONES[cfg.model.backbone].sizes:
        raise ConfigError(f"--size {cfg.model.size}: the {cfg.model.backbone} backbone is built for --size "
                          f"{' or '.join(map(str, BACKBONES[cfg.model.backbone].sizes))}")
    if not cfg.model.class_names and cfg.data.dataset not in FILE_CLASSES:
        raise ConfigError("--class-names: give at least one class name")
    if len(set(cfg.model.class_names)) != len(cfg.model.class_names):
        raise ConfigError(f"--class-names: a class name is repeated ({' '.join(cfg.model.class_names)})")
    if cfg.test.metric == "coco" and cfg.data.dataset != "COCO":
        raise ConfigError(f"--metric coco: COCO AP is scored on COCO-format ground truth (--dataset COCO); "
                          f"--dataset {cfg.data.dataset} is scored with --metric voc07 or voc12")
    if cfg.model.min_sizes and cfg.model.priors == "fit":
        raise ConfigError("--priors fit with --min-sizes: give one of them (--min-sizes sets the sizes by hand)")
    if cfg.model.min_sizes:
        layout = PRIORS[cfg.prior_table]
        maps, top = len(layout["feature_maps"]), layout["max_sizes"][-1]
        sizes = cfg.model.min_sizes
        if len(sizes) != maps or not all(0 < a < b for a, b in zip(sizes, sizes[1:] + (top,))):
            raise ConfigError(f"--min-sizes: give {maps} prior sizes in pixels, one per feature map of the "
                              f"{cfg.model.backbone} {cfg.model.size} layout, increasing and below {top:g} (got "
                              f"{' '.join(f'{v:g}' for v in sizes)}; the layout's: "
                              f"{' '.join(f'{v:g}' for v in layout['min_sizes'])})")
    layout = cfg.model.prior_layout
    if set(layout) != set(PRIOR_KEYS) or layout["min_dim"] != cfg.model.size or \
            len({len(layout[k]) for k in PRIOR_KEYS[1:6]}) != 1:
        raise ConfigError(f"prior layout {layout}: needs the keys {', '.join(PRIOR_KEYS)} with one entry per "
                          f"feature map, for input size {cfg.model.size}")
    return cfg


def check_model_flags(path: str, checkpoint_config: dict, flags: dict):
    """Flags that would change a checkpoint's network, its prior layout included, are a one-line error: its weights
    and the priors they were trained with fix them."""
    saved_cfg = Config.from_dict(checkpoint_config)
    saved = saved_cfg.to_dict()
    known = saved_cfg.prior_table in PRIORS
    table = table_layout(saved_cfg.prior_table, saved_cfg.model.min_sizes) if known else None
    for key in ("backbone", "size", "batch_norm", "class_names", "min_sizes", "priors"):
        value = flags.get(key)
        if value is None:
            continue
        value = list(value) if isinstance(value, (list, tuple)) else value
        if key == "min_sizes" and known and table_layout(saved_cfg.prior_table, value) == saved["prior_layout"]:
            continue
        if key == "priors" and value == "layout" and saved["prior_layout"] == table:
            continue
        if value != saved[key]:
            if key in ("min_sizes", "priors"):
                raise ConfigError(f"{flag(key)}: {path} was trained with the prior layout it carries (sizes "
                                  f"{' '.join(f'{v:g}' for v in saved['prior_layout']['min_sizes'])} px); a "
                                  f"checkpoint decodes with its own priors, drop {flag(key)}")
            shown = " ".join(map(str, saved[key])) if isinstance(saved[key], list) else saved[key]
            raise ConfigError(f"{flag(key)}: {path} was trained with {flag(key)} {shown}; a checkpoint carries "
                              f"its network settings, drop {flag(key)}")
