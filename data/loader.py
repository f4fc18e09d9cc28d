"""From a dataset source to batches: the per-sample transform, collate, the training sampler and loaders."""
import gc
import itertools
import logging
import random
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from layers.matching import pad_targets

log = logging.getLogger("ssd.data")


class Sample(NamedTuple):
    """One dataset item."""
    image: torch.Tensor  # uint8 [3, S, S] BGR (a view of the HWC pixels)
    target: torch.Tensor  # float32 [n, 5]: x1, y1, x2, y2 in [0, 1], label
    index: int  # into the source
    size: tuple  # the original (height, width); (0, 0) marks an image that could not be decoded (evaluation)


class Batch(NamedTuple):
    """What the loaders hand over."""
    images: torch.Tensor  # uint8 [B, 3, S, S], channels-last strides
    targets: torch.Tensor  # [B, N, 5] padded with label -1
    indices: torch.Tensor  # [B]
    sizes: torch.Tensor  # [B, 2] (height, width)


class SSDDataset(Dataset):
    """source + transform -> Sample (image, target, index, original size). An int key gives the
    untransformed-by-chance sample (evaluation); an (index, seed) key from `TrainSampler` seeds the augmentation,
    so a sample depends only on the run seed, the epoch and the index. An image that cannot be read: with
    `substitute` (training) it is logged, naming the file, and the next readable one takes its place; without
    (evaluation) the sample is a blank image with size (0, 0), the mark the evaluation loop reads, so that every
    listed image is scored exactly once."""

    def __init__(self, source, transform, use_difficult: bool = True, substitute: bool = True,
                 max_substitutions: int = 20, problems_path: str = None):
        """`problems_path`: a run's dataset_problems.txt, where an unreadable training image is also named."""
        self.source, self.transform, self.use_difficult = source, transform, use_difficult
        self.substitute, self.max_substitutions = substitute, max_substitutions
        self.problems_path, self.warned = problems_path, set()

    def __len__(self):
        return len(self.source)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, (0, key))
        rng = np.random.default_rng(seed)
        for _attempt in range(self.max_substitutions):
            try:
                image, boxes, labels, difficult = self.source.load(index)
                break
            except ValueError as exc:
                if not self.substitute:
                    blank, target = self.transform(np.zeros((1, 1, 3), np.uint8), np.zeros((0, 4), np.float32),
                                                   np.zeros(0, np.int64))[0], np.zeros((0, 5), np.float32)
                    return Sample(torch.from_numpy(blank).permute(2, 0, 1), torch.from_numpy(target), index, (0, 0))
                if str(exc) not in self.warned:  # once per file (and loader process), not each time it is drawn
                    self.warned.add(str(exc))
                    log.warning("%s; another image takes its place each time it is drawn (python -m scripts.check_data "
                                "lists every such file)", exc)
                    if self.problems_path:
                        with open(self.problems_path, "a") as f:  # one short append: whole lines per process
                            f.write(f"training set: {exc}; another image takes its place each time it is drawn\n")
                index = (index + 1) % len(self.source)
        else:
            raise RuntimeError(f"{self.max_substitutions} unreadable images in a row in {self.source.name}; "
                               f"run `python -m scripts.check_data` on the dataset")
        original_size = image.shape[:2]
        if not self.use_difficult and len(labels):
            boxes, labels = boxes[~difficult], labels[~difficult]
        image, boxes, labels = self.transform(image, boxes, labels, rng)
        target = np.concatenate([boxes, labels[:, None].astype(np.float32)], 1) if len(labels) else \
            np.zeros((0, 5), np.float32)
        height, width = original_size
        # a [3, S, S] view of the HWC pixels: no transpose here (see `collate`)
        return Sample(torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(target), index, (height, width))


def collate(batch):
    """Samples -> Batch: images uint8 [B, 3, S, S], targets [B, N, 5] padded with label -1, indices, sizes.

    The images keep the decoder's HWC layout: the batch is [B, 3, S, S] with channels-last strides, so no worker
    spends time transposing pixels; the consumer makes it contiguous in the format its model runs in, on the GPU
    (`as_model_input`)."""
    images, targets, indices, sizes = zip(*batch)
    images = torch.stack([image.permute(1, 2, 0) for image in images]).permute(0, 3, 1, 2)
    return Batch(images, pad_targets(list(targets)), torch.tensor(indices), torch.tensor(sizes))


def as_model_input(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """A uint8 batch [B, 3, S, S] of any strides -> on `device`, contiguous in the model's memory format."""
    images = images.to(device, non_blocking=True)
    return images.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class TrainSampler(Sampler):
    """An endless stream of (index, augmentation seed) for iteration-based training.

    Epoch e shuffles with seed (seed, e); with `world_size` > 1 each rank takes every world_size-th index of the
    padded permutation (DistributedSampler's sharding). `start_sample` skips that many samples of this rank's
    stream without loading them, which is how `--resume` continues exactly.
    """

    def __init__(self, length: int, seed: int = 0, rank: int = 0, world_size: int = 1, start_sample: int = 0):
        self.length, self.seed, self.rank, self.world_size = length, seed, rank, world_size
        self.start_sample = start_sample
        self.per_rank = -(-length // world_size)

    def _stream(self):
        for epoch in itertools.count(self.start_sample // self.per_rank):
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.length, generator=generator).tolist()
            order += order[: self.per_rank * self.world_size - self.length]
            for position, index in enumerate(order[self.rank::self.world_size]):
                yield epoch * self.per_rank + position, index, epoch

    def __iter__(self):
        for sample, index, epoch in self._stream():
            if sample >= self.start_sample:
                yield index, (self.seed, epoch, index)


def seed_worker(worker_id: int):
    """Seed numpy/random in each worker from torch's per-worker seed (augmentation uses its own per-sample rng)."""
    seed = torch.initial_seed() % 2 ** 32
    np.random.seed(seed)
    random.seed(seed)


def freeze_before_fork(workers: int):
    """Move every object alive now out of the garbage collector's reach (gc.freeze) before the workers fork:
    a collection in a worker would otherwise touch, and so copy, every page of the parent's objects."""
    if workers > 0:
        gc.collect()
        gc.freeze()


def train_loader(dataset, batch_size: int, workers: int, seed: int, rank: int = 0, world_size: int = 1,
                 start_iteration: int = 0, pin_memory: bool = True):
    freeze_before_fork(workers)
    sampler = TrainSampler(len(dataset), seed, rank, world_size, start_iteration * batch_size)
    # the workers' base seed comes from a generator of its own: drawn from the global RNG, it would move the state
    # a checkpoint saves, and a resumed run would continue from another one
    workers_seed = torch.Generator().manual_seed(seed * 1_000_003 + rank)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, collate_fn=collate,
                      pin_memory=pin_memory, drop_last=True, worker_init_fn=seed_worker, generator=workers_seed,
                      persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None)


def eval_loader(dataset, batch_size: int, workers: int, pin_memory: bool = True, indices=None):
    freeze_before_fork(workers)
    subset = dataset if indices is None else torch.utils.data.Subset(dataset, indices)
    return DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate,
                      pin_memory=pin_memory, worker_init_fn=seed_worker)
