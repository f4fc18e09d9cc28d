"""Default (prior) boxes of the paper's section 2.2, in ssd.pytorch's order so its checkpoints line up."""
import math

import torch


class PriorBox:
    """`PriorBox(cfg).forward()` -> float32 [P, 4] priors as (cx, cy, w, h) in [0, 1].

    `cfg` uses ssd.pytorch's keys: min_dim, feature_maps, steps, min_sizes, max_sizes, aspect_ratios, clip.
    Order: map by map, cells row-major, and per cell: s_k, sqrt(s_k * s_k+1), then (ar, 1/ar) for each ar.
    """

    def __init__(self, cfg: dict):
        self.image_size = cfg["min_dim"]
        self.feature_maps = cfg["feature_maps"]
        self.steps = cfg["steps"]
        self.min_sizes = cfg["min_sizes"]
        self.max_sizes = cfg["max_sizes"]
        self.aspect_ratios = cfg["aspect_ratios"]
        self.clip = cfg["clip"]
        lengths = {len(self.feature_maps), len(self.steps), len(self.min_sizes), len(self.max_sizes),
                   len(self.aspect_ratios)}
        if len(lengths) != 1:
            raise ValueError("prior config: feature_maps, steps, min_sizes, max_sizes and aspect_ratios "
                             "must have one entry per feature map")

    def boxes_per_location(self) -> list:
        return [2 + 2 * len(ratios) for ratios in self.aspect_ratios]

    def shapes(self) -> list:
        """Per feature map the prior shapes of one cell, [A_k, 2] float64 (w, h) in [0, 1], in the order above."""
        out = []
        for min_size, max_size, ratios in zip(self.min_sizes, self.max_sizes, self.aspect_ratios):
            s_k = min_size / self.image_size
            s_k_prime = math.sqrt(s_k * (max_size / self.image_size))
            shapes = [(s_k, s_k), (s_k_prime, s_k_prime)]
            for ar in ratios:
                r = math.sqrt(ar)
                shapes += [(s_k * r, s_k / r), (s_k / r, s_k * r)]
            out.append(torch.tensor(shapes, dtype=torch.float64))
        return out

    def forward(self) -> torch.Tensor:
        per_map = []
        for fmap, step, wh in zip(self.feature_maps, self.steps, self.shapes()):
            scale = self.image_size / step
            coords = (torch.arange(fmap, dtype=torch.float64) + 0.5) / scale
            cy, cx = torch.meshgrid(coords, coords, indexing="ij")  # row-major cells
            centres = torch.stack([cx, cy], dim=-1).reshape(-1, 1, 2).expand(-1, len(wh), 2)
            per_map.append(torch.cat([centres, wh.expand(fmap * fmap, -1, -1)], dim=-1).reshape(-1, 4))
        priors = torch.cat(per_map).float()
        if self.clip:
            priors.clamp_(0, 1)
        return priors

    __call__ = forward
