"""A study's feature table as input tensors: column selection, validation, standardisation.

:func:`load_study_tensors` reads from a feature table (:mod:`hepchain.features.table`)
only the columns a training needs (the features of the groups the network
takes, the targets, ``weight``, ``fold``, ``event`` and the study's auxiliary
columns), checks them once on the host, and returns a :class:`StudyTensors`
of CPU tensors in the layout of :meth:`FeatureSpec.tensors
<hepchain.features.spec.FeatureSpec.tensors>` (``"event"`` ``(N, F)``, a set
``(N, K, F)`` with its ``"<set>_mask"`` ``(N, K)`` bool, ``"cells"``
``(N, 310, C)``).  Checks, each raising one line that names the file and the
column:

- a missing column: :class:`~hepchain.errors.InputFileError` naming the
  column and what needs it;
- NaN or infinite inputs (after the cast to float32): the feature, the
  column and the count (for a set only the unmasked entries count, padding
  may hold anything); nothing is ever trained on them;
- NaN or infinite weights, infinite targets, non-integer folds or labels.

Rows whose target is NaN (no truth match, collision data) are dropped; their
count is kept in :attr:`StudyTensors.n_dropped` and logged.  A target column
of integer dtype (vh's ``label``) holds class labels and gives an ``(N,)``
int64 target; float targets give ``(N, T)`` float32.  For ``jets`` the two
jets of a dijet event (adjacent rows with the same ``sample`` and ``event``,
``jet_rank`` 0 then 1) are paired as ``(ref, probe)`` by ``is_probe``
(:func:`dijet_pairs`); a jet whose partner was dropped stays a single row.

:class:`Standardize` is the input preprocessing: ``(x - mean) / std`` per
feature of each group, fitted on the training rows only (masked set entries
excluded; a standard deviation at or below :data:`STD_FLOOR` is replaced by 1,
so a feature constant in training passes through shifted, never blown up).
It is an ``nn.Module`` in front of the network, so the exported ONNX model
takes raw features.

:func:`synthetic_feature_table` makes a feature table in a study's real column
layout from random numbers with a learnable relation between inputs and
target (tests and the throughput benchmark).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hepchain.errors import ConfigError, HepchainError, InputFileError
from hepchain.features.spec import FeatureSpec
from hepchain.features.table import read_schema

log = logging.getLogger(__name__)

#: The studies the engine trains.
STUDIES: tuple[str, ...] = ("recoil", "ditau", "jets", "electrons", "vh")

#: Default target columns per study (``vh``: the integer class label).
DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    "recoil": ("truth_ux", "truth_uy"),
    "ditau": ("m_true",),
    "jets": ("calib_factor",),
    "electrons": ("probe_energy_truth",),
    "vh": ("label",),
}

#: Auxiliary table columns that ride along in the batches (table column -> batch key).
AUX_COLUMNS: dict[str, dict[str, str]] = {"jets": {"jet_pt": "pt_reco"}}

#: Columns that identify the two jets of a dijet event and their roles (jets study).
PAIR_COLUMNS: tuple[str, ...] = ("sample", "event", "jet_rank", "is_probe")

#: A standard deviation at or below this is replaced by 1 in :class:`Standardize`.
STD_FLOOR = 1e-6

#: Rows per chunk when fitting the standardisation (bounds the float64 temporaries).
_FIT_CHUNK = 65536


def check_study(study: str) -> str:
    """Return ``study`` if the engine knows it, else raise :class:`ConfigError` listing the known ones."""
    if study not in STUDIES:
        raise ConfigError(f"study '{study}' is unknown (allowed: {', '.join(STUDIES)})")
    return study


def study_spec(study: str, **sizes: int) -> FeatureSpec:
    """The feature spec of ``study`` for the given set sizes.

    ``recoil`` takes ``n_pfos`` (K of the ``pfos`` set) and ``n_split`` (leading
    charged/neutral PFOs among the event features); ``jets`` takes
    ``n_constituents``; the other studies have fixed shapes.  Without sizes
    the study's default spec is returned.
    """
    check_study(study)
    sizes = dict(sizes)
    spec: FeatureSpec
    if study == "recoil":
        from hepchain.features.recoil import N_PFOS, N_PFOS_SPLIT, RECOIL_SPEC, recoil_spec

        n_pfos, n_split = int(sizes.pop("n_pfos", N_PFOS)), int(sizes.pop("n_split", N_PFOS_SPLIT))
        spec = RECOIL_SPEC if (n_pfos, n_split) == (N_PFOS, N_PFOS_SPLIT) else recoil_spec(n_pfos, n_split)
    elif study == "jets":
        from hepchain.features.jets import JETS_SPEC, spec_for

        spec = spec_for(int(sizes.pop("n_constituents", JETS_SPEC["constituents_mask"].shape[0])))
    elif study == "ditau":
        from hepchain.features.ditau import DITAU_SPEC as spec
    elif study == "electrons":
        from hepchain.features.electrons import ELECTRONS_SPEC as spec
    else:
        from hepchain.features.vh import VH_SPEC as spec
    if sizes:
        raise ConfigError(f"study '{study}' has no spec size '{sorted(sizes)[0]}'")
    return spec


def table_columns(path: str | Path) -> dict[str, int | None]:
    """Column names of a feature table with their flattened row size (None for a scalar column)."""
    import pyarrow as pa

    schema = read_schema(path)
    out: dict[str, int | None] = {}
    for f in schema:
        out[f.name] = int(f.type.list_size) if isinstance(f.type, pa.FixedSizeListType) else None
    return out


def spec_sizes(study: str, columns: Mapping[str, int | None]) -> dict[str, int]:
    """The :func:`study_spec` sizes matching a table's columns (from :func:`table_columns`)."""
    check_study(study)
    if study == "recoil":
        sizes: dict[str, int] = {}
        if columns.get("pfos_mask"):
            sizes["n_pfos"] = int(columns["pfos_mask"] or 0)
        ranks = [int(m.group(1)) for c in columns if (m := re.fullmatch(r"ch_pfo(\d+)_px", c))]
        if ranks:
            sizes["n_split"] = max(ranks) + 1
        return sizes
    if study == "jets" and columns.get("constituents_mask"):
        return {"n_constituents": int(columns["constituents_mask"] or 0)}
    return {}


def spec_tensor_names(spec: FeatureSpec) -> tuple[str, ...]:
    """Keys of :meth:`FeatureSpec.tensors` of ``spec``, in its order (each group, then its mask)."""
    names: list[str] = []
    for group in spec.groups:
        mask = f"{group}_mask"
        features = spec.group_names(group)
        if any(n != mask for n in features):
            names.append(group)
        if mask in features:
            names.append(mask)
    return tuple(names)


def group_features(spec: FeatureSpec, name: str) -> list[str]:
    """Feature names stacked into tensor ``name`` (a group's values, or ``[mask]`` for ``"<group>_mask"``)."""
    if name.endswith("_mask") and name in spec.names:
        return [name]
    if name not in spec.groups:
        raise ConfigError(
            f"input '{name}' is not a group of study '{spec.study}' (tensors: {', '.join(spec_tensor_names(spec))})"
        )
    return [n for n in spec.group_names(name) if n != f"{name}_mask"]


def _mask_of(spec: FeatureSpec, name: str) -> str | None:
    mask = f"{name}_mask"
    return mask if not name.endswith("_mask") and mask in spec.names else None


# --------------------------------------------------------------------------- the loaded tensors


@dataclass
class StudyTensors:
    """The training inputs of one study, as CPU tensors, after validation and NaN-target removal.

    Attributes:
        study: the study name.
        source: where the rows came from (the table path), for messages.
        spec: the feature spec the tensors follow.
        sizes: the :func:`study_spec` sizes of ``spec`` (saved with a model).
        input_names: keys of ``inputs`` in network order.
        inputs: ``name -> (N, F)`` / ``(N, K, F)`` float32 or ``(N, K)`` bool.
        target_names: the target columns.
        target: ``(N, T)`` float32 (regression) or ``(N,)`` int64 (``vh`` labels).
        weight: ``(N,)`` float32 event weights.
        fold: ``(N,)`` int64 fold of each row.
        event: ``(N,)`` event numbers.
        aux: batch key -> ``(N,)`` tensor of auxiliary columns (jets: ``pt_reco``).
        pairs: ``(P, 2)`` int64 rows ``(ref, probe)`` of the dijet events with both jets kept (jets; else empty).
        rows: ``(N,)`` int64 row of each kept row in the table.
        n_table_rows: rows read from the table (after ``max_rows``).
        n_dropped: rows dropped because a target was NaN.
        metadata: the table's metadata.
    """

    study: str
    source: str
    spec: FeatureSpec
    sizes: dict[str, int]
    input_names: tuple[str, ...]
    inputs: dict[str, Tensor]
    target_names: tuple[str, ...]
    target: Tensor
    weight: Tensor
    fold: np.ndarray
    event: np.ndarray
    aux: dict[str, Tensor] = field(default_factory=dict)
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    n_table_rows: int = 0
    n_dropped: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        """Rows kept for training."""
        return int(self.weight.shape[0])

    @property
    def is_classification(self) -> bool:
        """True when the target holds integer class labels."""
        return not self.target.is_floating_point()

    def require_positive(self, key: str, reason: str) -> None:
        """Raise naming the column and the count where target/aux ``key`` is not > 0."""
        if key == "target":
            for j, name in enumerate(self.target_names):
                bad = int((~(self.target[:, j] > 0)).sum())
                if bad:
                    raise HepchainError(f"{self.source}: target column '{name}' has {bad} values <= 0 ({reason})")
            return
        column = {v: k for m in AUX_COLUMNS.values() for k, v in m.items()}.get(key, key)
        bad = int((~(self.aux[key] > 0)).sum())
        if bad:
            raise HepchainError(f"{self.source}: column '{column}' has {bad} values <= 0 ({reason})")


def _needed_columns(
    study: str, spec: FeatureSpec, input_names: Sequence[str], targets: Sequence[str]
) -> dict[str, str]:
    """Column -> what needs it, in reading order."""
    roles: dict[str, str] = {}
    for name in input_names:
        for feature in group_features(spec, name):
            roles.setdefault(feature, f"feature of input '{name}'")
        mask = _mask_of(spec, name)
        if mask:
            roles.setdefault(mask, f"mask of input '{name}'")
    for target in targets:
        roles.setdefault(target, "target")
    for column in ("weight", "fold", "event"):
        roles.setdefault(column, "bookkeeping")
    for column in AUX_COLUMNS.get(study, {}):
        roles.setdefault(column, f"auxiliary column of study '{study}'")
    if study == "jets":
        for column in PAIR_COLUMNS:
            roles.setdefault(column, "dijet pairing")
    return roles


def resolve_inputs(spec: FeatureSpec, input_names: Sequence[str] | None) -> tuple[str, ...]:
    """``input_names`` checked against ``spec`` (default: every tensor of the spec)."""
    if input_names is None:
        return spec_tensor_names(spec)
    for name in input_names:
        group_features(spec, name)
    return tuple(input_names)


def load_study_tensors(
    study: str,
    table_path: str | Path,
    *,
    spec: FeatureSpec | None = None,
    targets: Sequence[str] | None = None,
    input_names: Sequence[str] | None = None,
    max_rows: int | None = None,
    drop_nan_targets: bool = True,
) -> StudyTensors:
    """Read, check and stack the training inputs of ``study`` from the feature table ``table_path``.

    ``spec`` defaults to the study's spec with the set sizes of the table;
    ``targets`` to :data:`DEFAULT_TARGETS`; ``input_names`` (tensor keys,
    e.g. a network's ``input_names``) to every tensor of the spec: only their
    columns are read.  ``max_rows`` keeps the first rows only (tests,
    benchmarks).  With ``drop_nan_targets`` False no row is dropped and the
    targets are not checked (inference on tables without truth).
    """
    check_study(study)
    path = Path(table_path)
    present = table_columns(path)
    sizes = spec_sizes(study, present)
    if spec is None:
        spec = study_spec(study, **sizes)
    names = resolve_inputs(spec, input_names)
    target_names = tuple(targets) if targets is not None else DEFAULT_TARGETS[study]
    roles = _needed_columns(study, spec, names, target_names if drop_nan_targets else ())
    for column, role in roles.items():
        if column not in present:
            raise InputFileError(f"{path}: column '{column}' ({role}) is missing from the feature table")
    from hepchain.features.table import read_table

    columns, metadata = read_table(path, list(roles))
    return study_tensors_from_columns(
        study,
        columns,
        spec=spec,
        sizes=sizes,
        targets=target_names,
        input_names=names,
        source=str(path),
        max_rows=max_rows,
        metadata=metadata,
        drop_nan_targets=drop_nan_targets,
    )


def _float_inputs(
    spec: FeatureSpec, columns: Mapping[str, np.ndarray], names: Sequence[str], n: int, source: str
) -> dict[str, np.ndarray]:
    """Stack and check the inputs: float32 values (finite where unmasked), bool masks."""
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name.endswith("_mask") and name in spec.names:
            mask = np.asarray(columns[name])[:n]
            if mask.dtype != np.bool_:
                raise HepchainError(f"{source}: mask column '{name}' must be boolean, got dtype {mask.dtype}")
            out[name] = np.ascontiguousarray(mask)
            continue
        features = group_features(spec, name)
        mask_name = _mask_of(spec, name)
        mask = np.asarray(columns[mask_name], dtype=bool)[:n] if mask_name else None
        shape = spec[features[0]].shape
        stacked = np.empty((n, *shape, len(features)), dtype=np.float32)
        for j, feature in enumerate(features):
            raw = np.asarray(columns[feature])[:n]
            if raw.shape != (n, *shape):
                raise HepchainError(
                    f"{source}: column '{feature}' has row shape {raw.shape[1:]}, "
                    f"feature '{feature}' of study '{spec.study}' expects {shape}"
                )
            if raw.dtype.kind not in "biuf":
                raise HepchainError(f"{source}: column '{feature}' must be numeric, got dtype {raw.dtype}")
            with np.errstate(over="ignore", invalid="ignore"):
                values = raw.astype(np.float32, copy=False)
            bad = ~np.isfinite(values)
            if mask is not None:
                bad &= mask
            count = int(bad.sum())
            if count:
                where = " among the unmasked entries" if mask is not None else ""
                raise HepchainError(
                    f"{source}: column '{feature}' (feature '{feature}' of input '{name}') has {count} "
                    f"NaN/inf values{where}; the table must be fixed before training"
                )
            stacked[..., j] = values
        out[name] = stacked
    return out


def dijet_pairs(columns: Mapping[str, np.ndarray], source: str) -> np.ndarray:
    """``(P, 2)`` rows ``(ref, probe)`` of the dijet events whose two jets are adjacent rows.

    Two rows form an event when they follow each other with the same
    ``sample`` and ``event``, ``jet_rank`` 0 then 1; ``is_probe`` marks the
    probe (exactly one of the two must be the probe).
    """
    sample, event = np.asarray(columns["sample"]), np.asarray(columns["event"])
    rank, probe = np.asarray(columns["jet_rank"]), np.asarray(columns["is_probe"], dtype=bool)
    if len(event) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    same = (sample[:-1] == sample[1:]) & (event[:-1] == event[1:]) & (rank[:-1] == 0) & (rank[1:] == 1)
    first = np.flatnonzero(same).astype(np.int64)
    second = first + 1
    bad = probe[first] == probe[second]
    if bad.any():
        raise HepchainError(
            f"{source}: column 'is_probe' marks both or neither jet as probe in {int(bad.sum())} dijet events"
        )
    ref = np.where(probe[first], second, first)
    return np.stack([ref, np.where(probe[first], first, second)], axis=1)


def study_tensors_from_columns(
    study: str,
    columns: Mapping[str, np.ndarray],
    *,
    spec: FeatureSpec | None = None,
    sizes: Mapping[str, int] | None = None,
    targets: Sequence[str] | None = None,
    input_names: Sequence[str] | None = None,
    source: str = "feature table",
    max_rows: int | None = None,
    metadata: Mapping[str, Any] | None = None,
    drop_nan_targets: bool = True,
) -> StudyTensors:
    """:class:`StudyTensors` from in-memory columns (see :func:`load_study_tensors`)."""
    check_study(study)
    sizes = dict(sizes or {})
    if spec is None:
        spec = study_spec(study, **sizes)
    names = resolve_inputs(spec, input_names)
    target_names = tuple(targets) if targets is not None else DEFAULT_TARGETS[study]
    for column, role in _needed_columns(study, spec, names, target_names if drop_nan_targets else ()).items():
        if column not in columns:
            raise InputFileError(f"{source}: column '{column}' ({role}) is missing from the feature table")
    n_table = int(np.shape(columns["weight"])[0])
    if max_rows is not None:
        if isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or max_rows < 1:
            raise ConfigError(f"max_rows must be an integer >= 1, got {max_rows!r}")
        n_table = min(n_table, int(max_rows))
    n = n_table

    weight = np.asarray(columns["weight"], dtype=np.float64)[:n]
    bad = int((~np.isfinite(weight)).sum())
    if bad:
        raise HepchainError(f"{source}: column 'weight' has {bad} NaN/inf values")
    fold = np.asarray(columns["fold"])[:n]
    if fold.dtype.kind not in "iu":
        raise HepchainError(f"{source}: column 'fold' must hold integers, got dtype {fold.dtype}")

    keep: np.ndarray | None = None
    target: np.ndarray
    if not drop_nan_targets:
        target = np.zeros((n, 0), dtype=np.float32)
    elif study == "vh" or any(np.asarray(columns[t]).dtype.kind in "iu" for t in target_names):
        if len(target_names) != 1:
            raise ConfigError(f"a classification needs exactly one label column, got targets {list(target_names)}")
        label = np.asarray(columns[target_names[0]])[:n]
        if label.dtype.kind not in "iu":
            raise HepchainError(
                f"{source}: label column '{target_names[0]}' must hold integers, got dtype {label.dtype}"
            )
        if n and label.min() < 0:
            raise HepchainError(
                f"{source}: label column '{target_names[0]}' has {int((label < 0).sum())} negative values"
            )
        target = label.astype(np.int64)
    else:
        target = np.empty((n, len(target_names)), dtype=np.float32)
        nan = np.zeros(n, dtype=bool)
        for j, name in enumerate(target_names):
            values = np.asarray(columns[name])[:n]
            if values.ndim != 1 or values.dtype.kind not in "biuf":
                raise HepchainError(f"{source}: target column '{name}' must be a numeric scalar column")
            with np.errstate(over="ignore", invalid="ignore"):
                values32 = values.astype(np.float32)
            inf = int(np.isinf(values32).sum())
            if inf:
                raise HepchainError(f"{source}: target column '{name}' has {inf} infinite values")
            nan |= np.isnan(values32)
            target[:, j] = values32
        if nan.any():
            keep = ~nan

    inputs = _float_inputs(spec, columns, names, n, source)
    aux = {key: np.asarray(columns[col])[:n].astype(np.float32) for col, key in AUX_COLUMNS.get(study, {}).items()}
    for key, values in aux.items():
        if not np.isfinite(values).all():
            raise HepchainError(f"{source}: column '{key}' has {int((~np.isfinite(values)).sum())} NaN/inf values")
    event = np.asarray(columns["event"])[:n]
    rows = np.arange(n, dtype=np.int64)
    pair_cols = {c: np.asarray(columns[c])[:n] for c in PAIR_COLUMNS} if study == "jets" else {}

    n_dropped = 0
    if keep is not None:
        n_dropped = int((~keep).sum())
        inputs = {k: v[keep] for k, v in inputs.items()}
        aux = {k: v[keep] for k, v in aux.items()}
        pair_cols = {k: v[keep] for k, v in pair_cols.items()}
        target, weight, fold, event, rows = target[keep], weight[keep], fold[keep], event[keep], rows[keep]
        log.info("%s: dropped %d of %d rows with a NaN target (%s)", source, n_dropped, n, ", ".join(target_names))
    pairs = dijet_pairs(pair_cols, source) if pair_cols else np.zeros((0, 2), dtype=np.int64)
    return StudyTensors(
        study=study,
        source=source,
        spec=spec,
        sizes=dict(sizes),
        input_names=names,
        inputs={k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()},
        target_names=target_names,
        target=torch.from_numpy(np.ascontiguousarray(target)),
        weight=torch.from_numpy(weight.astype(np.float32)),
        fold=fold.astype(np.int64),
        event=event,
        aux={k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in aux.items()},
        pairs=pairs,
        rows=rows,
        n_table_rows=n_table,
        n_dropped=n_dropped,
        metadata=dict(metadata or {}),
    )


# --------------------------------------------------------------------------- standardisation


class _Affine(nn.Module):
    """Holds one group's ``mean`` and ``std`` buffers ``(F,)``."""

    mean: Tensor
    std: Tensor

    def __init__(self, width: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))


class Standardize(nn.Module):
    """Per-feature ``(x - mean) / std`` of every value input; masks pass through unchanged.

    ``input_names`` are the network's inputs in order and ``forward`` takes and
    returns them in that order (a tuple).  Entries of a set outside its mask
    are set to 0 after the transform.  Constructed as the identity (mean 0,
    std 1, what a checkpoint load starts from); :meth:`fit` sets the
    statistics from training rows.
    """

    def __init__(self, input_names: Sequence[str], widths: Mapping[str, int]) -> None:
        super().__init__()
        self.input_names: tuple[str, ...] = tuple(input_names)
        self.stats = nn.ModuleDict(
            {name: _Affine(int(widths[name])) for name in self.input_names if not name.endswith("_mask")}
        )
        self._masks = {name: f"{name}_mask" for name in self.stats if f"{name}_mask" in self.input_names}

    @classmethod
    def for_spec(cls, spec: FeatureSpec, input_names: Sequence[str]) -> Standardize:
        """An identity :class:`Standardize` sized for ``input_names`` of ``spec``."""
        widths = {n: len(group_features(spec, n)) for n in input_names if not (n.endswith("_mask") and n in spec.names)}
        return cls(input_names, widths)

    @torch.no_grad()
    def fit(self, inputs: Mapping[str, Tensor], rows: np.ndarray | Tensor) -> Standardize:
        """Set mean and std of each value input from ``inputs[name][rows]`` (masked set entries excluded)."""
        index = torch.as_tensor(np.asarray(rows), dtype=torch.int64)
        for name, affine in self.stats.items():
            x = inputs[name]
            mask_name = self._masks.get(name)
            mask = inputs[mask_name] if mask_name else None
            mean, std = _chunked_moments(x, mask, index)
            std = torch.where(std > STD_FLOOR, std, torch.ones_like(std))
            affine.mean.copy_(mean.to(affine.mean.dtype))
            affine.std.copy_(std.to(affine.std.dtype))
        return self

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        """Standardised inputs, in ``input_names`` order."""
        by_name = dict(zip(self.input_names, inputs, strict=True))
        out: list[Tensor] = []
        for name, x in by_name.items():
            if name not in self.stats:
                out.append(x)
                continue
            affine = self.stats[name]
            y = (x - affine.mean) / affine.std
            mask_name = self._masks.get(name)
            if mask_name is not None:
                y = torch.where(by_name[mask_name].unsqueeze(-1), y, torch.zeros_like(y))
            out.append(y)
        return tuple(out)


def _chunked_moments(x: Tensor, mask: Tensor | None, index: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and (population) std over rows ``index`` of the last axis of ``x``, two passes in float64."""
    width = x.shape[-1]
    total = torch.zeros(width, dtype=torch.float64)
    count = torch.zeros((), dtype=torch.float64)
    chunks = [index[i : i + _FIT_CHUNK] for i in range(0, len(index), _FIT_CHUNK)]

    def values(chunk: Tensor) -> Tensor:
        v = x.index_select(0, chunk).to(torch.float64).reshape(-1, width)
        if mask is not None:
            v = v[mask.index_select(0, chunk).reshape(-1)]
        return v

    for chunk in chunks:
        v = values(chunk)
        total += v.sum(dim=0)
        count += v.shape[0]
    if count == 0:
        return torch.zeros(width, dtype=torch.float64), torch.ones(width, dtype=torch.float64)
    mean = total / count
    square = torch.zeros(width, dtype=torch.float64)
    for chunk in chunks:
        square += ((values(chunk) - mean) ** 2).sum(dim=0)
    return mean, (square / count).sqrt()


# --------------------------------------------------------------------------- synthetic tables


def synthetic_feature_table(
    study: str,
    n_rows: int,
    *,
    seed: int = 0,
    n_folds: int = 5,
    spec: FeatureSpec | None = None,
    groups: Sequence[str] | None = None,
    noise: float = 0.05,
) -> dict[str, np.ndarray]:
    """A feature table in the real column layout of ``study`` with random inputs and a learnable target.

    Every feature of ``spec`` (default: the study's spec; only the features
    of ``groups`` when given) is standard normal (padded set entries 0, masks
    keeping 1..K leading objects); the targets depend on the first event
    features (``x0``, ``x1``) with relative noise ``noise``: recoil
    ``truth_ux = 10 x0 + 2``, ``truth_uy = -8 x1``; ditau
    ``m_true = 200 + 60 x0 + 30 x1`` (> 0); jets ``calib_factor = 1 + 0.1 x0``
    with two rows per event (``jet_rank`` 0, 1, a random probe) and
    ``jet_pt`` > 0; electrons ``probe_energy_truth = 50 + 10 x0 + 5 x1``;
    vh ``label`` the class of ``x0 + x1`` among 3.  Plus ``weight`` (1),
    ``sample`` (0), ``event`` (jets: shared by the two jets) and ``fold``
    (``event`` mod ``n_folds``) and the other auxiliary columns of the study.
    """
    check_study(study)
    spec = spec or study_spec(study)
    rng = np.random.default_rng(seed)
    n = int(n_rows)
    if study == "jets":
        n += n % 2
    wanted = set(spec.groups if groups is None else groups)
    out: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    for group in spec.groups:
        if group not in wanted:
            continue
        mask_name = f"{group}_mask"
        if mask_name in spec.group_names(group):
            k = spec[mask_name].shape[0]
            count = rng.integers(1, k + 1, size=n)
            masks[group] = out[mask_name] = np.arange(k)[None, :] < count[:, None]
        for name in spec.group_names(group):
            if name == mask_name:
                continue
            feature = spec[name]
            values = rng.standard_normal((n, *feature.shape)).astype(np.float32 if feature.shape else np.float64)
            if group in masks:
                values = np.where(masks[group], values, 0.0).astype(values.dtype)
            out[name] = values
    if "event" in spec.groups:
        event_names = [n for n in spec.group_names("event")]
        x0 = np.asarray(out.get(event_names[0], rng.standard_normal(n)), dtype=np.float64)
        x1 = np.asarray(out.get(event_names[1], rng.standard_normal(n)), dtype=np.float64)
    else:
        x0, x1 = rng.standard_normal(n), rng.standard_normal(n)
    eps = rng.standard_normal((n, 2)) * noise
    event = np.arange(n, dtype=np.uint64)
    if study == "recoil":
        out["truth_ux"] = (10.0 * x0 + 2.0) * (1 + eps[:, 0])
        out["truth_uy"] = -8.0 * x1 * (1 + eps[:, 1])
    elif study == "ditau":
        out["m_true"] = (200.0 + 60.0 * np.tanh(x0) + 30.0 * np.tanh(x1)) * (1 + eps[:, 0])
    elif study == "jets":
        event = np.repeat(np.arange(n // 2, dtype=np.uint64), 2)
        out["calib_factor"] = (1.0 + 0.1 * np.tanh(x0)) * (1 + eps[:, 0])
        out["jet_pt"] = rng.uniform(800.0, 1500.0, size=n)
        out["gen_pt"] = out["calib_factor"] * out["jet_pt"]
        out["jet_rank"] = np.tile(np.array([0, 1], dtype=np.int32), n // 2)
        probe_rank = rng.integers(0, 2, size=n // 2)
        out["is_probe"] = (np.arange(2)[None, :] == probe_rank[:, None]).reshape(-1)
        out["matched"] = np.ones(n, dtype=bool)
    elif study == "electrons":
        energy = (50.0 + 10.0 * np.tanh(x0) + 5.0 * np.tanh(x1)) * (1 + eps[:, 0])
        out["probe_energy_truth"] = energy
        out["probe_energy_zlabel"] = energy * (1 + eps[:, 1])
    else:
        s = x0 + x1
        out["label"] = np.digitize(s, [-0.5, 0.5]).astype(np.int64)
    out["weight"] = np.ones(n)
    out["sample"] = np.zeros(n, dtype=np.int32)
    out["event"] = event
    out["fold"] = (event % np.uint64(n_folds)).astype(np.int64)
    return out
