import json
import logging

from utils.logger import MetricsLogger


def test_metrics_file_and_missing_visdom_server_is_one_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="ssd"):
        logger = MetricsLogger(str(tmp_path), tensorboard=True, visdom=True)
    assert logger.viz is None
    assert sum("visdom" in r.getMessage() for r in caplog.records if r.name == "ssd") == 1
    for it in range(1, 4):
        logger.log(it, {"loss": 3.0 / it, "loss_l": 1.0, "loss_c": 2.0 / it})
    logger.log(3, {"mAP": 0.5}, kind="eval")
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert rows[0] == {"kind": "train", "iteration": 1, "loss": 3.0, "loss_l": 1.0, "loss_c": 2.0}
    assert rows[-1]["kind"] == "eval" and rows[-1]["mAP"] == 0.5
    assert (tmp_path / "loss_curve.png").exists() is False
    logger.plot_losses()
    logger.close()
    assert (tmp_path / "loss_curve.png").stat().st_size > 1000
    assert any(p.name.startswith("events.out") for p in (tmp_path / "tensorboard").iterdir())
