"""In-memory data module: the whole table lives as tensors on the training device.

No ``DataLoader``, no workers and no per-row collation: batches are slices of
device tensors, shuffled each epoch with a generator seeded from
``(seed, epoch)``, so an epoch's order does not depend on global RNG state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor

from hepchain.errors import HepchainError

Batch = tuple[Tensor, Tensor, Tensor]


def auto_device() -> torch.device:
    """Device that ``accelerator="auto"`` trains on: CUDA if available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def epoch_seed(seed: int, epoch: int) -> int:
    """Mix ``(seed, epoch)`` into one 63-bit generator seed."""
    state = np.random.SeedSequence(
        [abs(int(seed)), int(seed < 0), int(epoch)]
    ).generate_state(1, np.uint64)
    return int(state[0]) & (2**63 - 1)


class TensorBatches:
    """Iterable of ``(x, y, w)`` batches over tensors already on their device.

    With ``shuffle`` the rows are permuted every pass with a generator seeded
    from ``(seed, epoch)``; ``epoch_fn`` supplies the epoch (the trainer's),
    else passes are counted.  With ``drop_single`` a last batch of one row is
    dropped (batch norm needs more than one row in training).
    """

    def __init__(
        self,
        tensors: Batch,
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_single: bool = False,
        seed: int = 0,
        epoch_fn: Callable[[], int] | None = None,
    ) -> None:
        self.tensors = tensors
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_single = drop_single
        self.seed = int(seed)
        self.epoch_fn = epoch_fn
        self._passes = 0

    @property
    def n_rows(self) -> int:
        """Number of rows iterated over."""
        return int(self.tensors[0].shape[0])

    def __len__(self) -> int:
        full, rest = divmod(self.n_rows, self.batch_size)
        keep_rest = rest > 1 if self.drop_single else rest > 0
        return full + int(keep_rest)

    def __iter__(self) -> Iterator[Batch]:
        epoch = self.epoch_fn() if self.epoch_fn is not None else self._passes
        self._passes += 1
        x, y, w = self.tensors
        order: Tensor | None = None
        if self.shuffle:
            generator = torch.Generator(device=x.device)
            generator.manual_seed(epoch_seed(self.seed, epoch))
            order = torch.randperm(self.n_rows, generator=generator, device=x.device)
        for i in range(len(self)):
            start, stop = (
                i * self.batch_size,
                min((i + 1) * self.batch_size, self.n_rows),
            )
            if order is None:
                yield x[start:stop], y[start:stop], w[start:stop]
            else:
                rows = order[start:stop]
                yield x[rows], y[rows], w[rows]


def _check_index(name: str, index: np.ndarray, n_rows: int) -> np.ndarray:
    index = np.asarray(index)
    if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
        raise ValueError(
            f"{name} must be a 1-d integer array, got shape {index.shape} dtype {index.dtype}"
        )
    if index.size and (index.min() < 0 or index.max() >= n_rows):
        raise ValueError(f"{name} has entries outside 0..{n_rows - 1}")
    if np.unique(index).size != index.size:
        raise ValueError(f"{name} has duplicate entries")
    return index.astype(np.int64)


def check_finite(x: np.ndarray, feature_names: Sequence[str]) -> None:
    """Raise :class:`HepchainError` naming the first column with NaN/inf values."""
    bad = ~np.isfinite(x)
    if bad.any():
        column = int(np.argmax(bad.any(axis=0)))
        raise HepchainError(
            f"{int(bad[:, column].sum())} NaN/inf values in column '{feature_names[column]}'"
        )


class TensorDataModule(LightningDataModule):
    """Serve ``x [N, F]``, ``y [N]`` and ``w [N]`` by index sets from device tensors.

    The table is validated on construction and moved to the device once in
    :meth:`setup` (the trainer's root device when attached, else CUDA if
    available, else CPU).  Training batches are reshuffled every epoch with a
    generator seeded from ``(seed, epoch)``; validation and prediction
    batches keep the index order.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        w: np.ndarray,
        train_idx: np.ndarray,
        val_idx: np.ndarray,
        predict_idx: np.ndarray | None = None,
        *,
        feature_names: Sequence[str] | None = None,
        batch_size: int = 1024,
        seed: int = 0,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"x must be 2-d [N, F], got shape {x.shape}")
        n_rows, n_features = x.shape
        names = (
            list(feature_names)
            if feature_names is not None
            else [f"feature_{j}" for j in range(n_features)]
        )
        if len(names) != n_features:
            raise ValueError(
                f"{len(names)} feature_names given for {n_features} columns of x"
            )
        y, w = np.asarray(y), np.asarray(w)
        if y.shape != (n_rows,) or w.shape != (n_rows,):
            raise ValueError(
                f"y {y.shape} and w {w.shape} must both have shape ({n_rows},) to match x"
            )
        if not np.issubdtype(y.dtype, np.integer):
            raise HepchainError(
                f"column 'label' must hold integers, got dtype {y.dtype}"
            )
        if batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (batch norm), got {batch_size}")
        check_finite(x, names)
        if not np.all(np.isfinite(w)):
            raise HepchainError(
                f"{int((~np.isfinite(w)).sum())} NaN/inf values in column 'weight'"
            )
        self.train_idx = _check_index("train_idx", train_idx, n_rows)
        self.val_idx = _check_index("val_idx", val_idx, n_rows)
        self.predict_idx = (
            None
            if predict_idx is None
            else _check_index("predict_idx", predict_idx, n_rows)
        )
        if np.intersect1d(self.train_idx, self.val_idx).size:
            raise ValueError("train_idx and val_idx overlap")
        if self.train_idx.size < 2:
            raise HepchainError(
                f"training needs at least 2 rows, got {self.train_idx.size}"
            )
        self.feature_names = names
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self._device = None if device is None else torch.device(device)
        self._arrays = (
            np.ascontiguousarray(x, dtype=np.float32),
            y.astype(np.int64, copy=False),
            np.ascontiguousarray(w, dtype=np.float32),
        )
        self._splits: dict[str, Batch] = {}
        self._passes = 0

    @property
    def device(self) -> torch.device:
        """Device the tensors live (or will live) on."""
        if self._device is not None:
            return self._device
        if self.trainer is not None:
            return self.trainer.strategy.root_device
        return auto_device()

    def setup(self, stage: str | None = None) -> None:
        """Move the table to the device once and gather the index sets there."""
        device = self.device
        if self._splits and self._splits["train"][0].device == device:
            return
        table = tuple(torch.tensor(a, device=device) for a in self._arrays)
        indices = {"train": self.train_idx, "val": self.val_idx}
        if self.predict_idx is not None:
            indices["predict"] = self.predict_idx
        self._splits = {}
        for split, index in indices.items():
            rows = torch.tensor(index, device=device)
            x, y, w = (t.index_select(0, rows) for t in table)
            self._splits[split] = (x, y, w)

    def _current_epoch(self) -> int:
        if self.trainer is not None:
            return int(self.trainer.current_epoch)
        self._passes += 1
        return self._passes - 1

    def _tensors(self, split: str) -> Batch:
        if not self._splits:
            self.setup()
        if split not in self._splits:
            raise ValueError(f"no '{split}' rows were given to the data module")
        return self._splits[split]

    def train_dataloader(self) -> TensorBatches:  # type: ignore[override]
        """Shuffled training batches; a last batch of one row is dropped."""
        return TensorBatches(
            self._tensors("train"),
            self.batch_size,
            shuffle=True,
            drop_single=True,
            seed=self.seed,
            epoch_fn=self._current_epoch,
        )

    def val_dataloader(self) -> TensorBatches:  # type: ignore[override]
        """Validation batches in index order."""
        return TensorBatches(self._tensors("val"), self.batch_size)

    def predict_dataloader(self) -> TensorBatches:  # type: ignore[override]
        """Prediction batches in ``predict_idx`` order."""
        return TensorBatches(self._tensors("predict"), self.batch_size)
