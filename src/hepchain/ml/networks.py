"""Plain ``torch.nn`` networks of the five studies.

The networks here take their sizes as arguments and know nothing of the data,
the scaling or the training loop; the Lightning module wraps them.
:func:`build_network` reads the sizes from a study's
:class:`~hepchain.features.spec.FeatureSpec` and :data:`STUDY_NETWORKS` holds
each study's default architecture (from its seed).

Interface shared by every network built here (the training engine relies on
it): the attribute ``input_names`` lists the forward arguments in order, named
after the keys of :meth:`FeatureSpec.tensors` (``"event"`` ``(N, F)``,
``"<set>"`` ``(N, K, F)``, ``"<set>_mask"`` ``(N, K)`` bool, ``"cells"``
``(N, 310, C)``); ``forward(*inputs)`` takes float32 tensors (bool masks) in
that order and returns one float tensor ``(N, n_outputs)``.  Padded objects of
a set never contribute (their inputs and embeddings are zeroed behind the
mask before pooling), a row with an empty set gives a finite output, and every
network exports to ONNX (:mod:`hepchain.ml.onnx_export`).

Networks (``kind`` of :func:`build_network`):

``"mlp"`` -> :class:`MLP`
    ``event -> [noise] -> (Linear -> [BatchNorm] -> act -> [noise] ->
    [dropout]) x len(hidden) -> head``.
``"deepsets"`` -> :class:`DeepSets`
    per-object network phi, masked sum (or mean) pooling, per-row network rho
    on ``[pooled, event]``, head.
``"film_cnn"`` -> :class:`FiLMCNN`
    one small conv branch per calorimeter layer, FiLM-modulated by the event
    scalars, a Deep Sets track branch joining at the top dense layers.

Every head is a ``Linear`` to ``n_outputs``; with ``gaussian_head=True``
(``n_outputs`` must be 2) column 0 is the mean mu and column 1 the width
``sigma = softplus(raw) + min_sigma > 0`` (:class:`GaussianHead`).
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hepchain.errors import ConfigError

if TYPE_CHECKING:
    from hepchain.features.spec import FeatureSpec

#: Hidden layer sizes of the VH multiclassifier (ATLAS VH(->WW), Basso 2020).
VH_HIDDEN: tuple[int, ...] = (20, 20, 40, 70, 20, 50, 40, 30, 40, 30)

_ACTIVATIONS: dict[str, type[nn.Module]] = {"elu": nn.ELU, "relu": nn.ReLU, "softplus": nn.Softplus}


class GaussianNoise(nn.Module):
    """Add zero-mean Gaussian noise of width ``std``, only in training mode.

    In evaluation mode (and when exported) the layer is the identity.
    """

    def __init__(self, std: float) -> None:
        super().__init__()
        if not std >= 0.0:
            raise ConfigError(f"noise_std must be >= 0, got {std!r}")
        self.std = float(std)

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x + N(0, std)`` when training, ``x`` otherwise."""
        if self.training and self.std > 0.0:
            return x + torch.randn_like(x) * self.std
        return x

    def extra_repr(self) -> str:
        """Show the noise width in the module's repr."""
        return f"std={self.std}"


def make_activation(name: str) -> nn.Module:
    """Return a fresh activation module for ``name`` (``"elu"``, ``"relu"`` or ``"softplus"``)."""
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        allowed = ", ".join(sorted(_ACTIVATIONS))
        raise ConfigError(
            f"activation '{name}' is unknown (allowed: {allowed})"
        ) from None


class MLPClassifier(nn.Module):
    """Multilayer perceptron producing class logits.

    Layout: ``GaussianNoise`` on the inputs, then for each hidden size
    ``Linear -> BatchNorm1d -> activation -> GaussianNoise``, then a final
    ``Linear`` to ``n_classes`` logits.  No softmax is applied here: the loss
    works on logits, and the exported model and ``predict_proba`` add it.
    """

    input_names: tuple[str, ...] = ("event",)

    def __init__(
        self,
        n_inputs: int,
        hidden: Sequence[int] = VH_HIDDEN,
        n_classes: int = 6,
        activation: str = "elu",
        noise_std: float = 0.1,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if n_inputs < 1:
            raise ConfigError(f"n_inputs must be >= 1, got {n_inputs}")
        if n_classes < 2:
            raise ConfigError(f"n_classes must be >= 2, got {n_classes}")
        if any(int(size) < 1 for size in hidden):
            raise ConfigError(f"hidden layer sizes must be >= 1, got {tuple(hidden)}")
        self.n_inputs = int(n_inputs)
        self.n_classes = int(n_classes)
        layers: list[nn.Module] = [GaussianNoise(noise_std)]
        width = self.n_inputs
        for size in hidden:
            layers.append(nn.Linear(width, int(size)))
            if batch_norm:
                layers.append(nn.BatchNorm1d(int(size)))
            layers.append(make_activation(activation))
            layers.append(GaussianNoise(noise_std))
            width = int(size)
        layers.append(nn.Linear(width, self.n_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Map features ``[N, n_inputs]`` to logits ``[N, n_classes]``."""
        return self.layers(x)


# --------------------------------------------------------------------------- building blocks


def _check_sizes(name: str, value: Any, *, allow_empty: bool = True) -> tuple[int, ...]:
    """``value`` as a tuple of layer sizes >= 1 (a list from a config is fine)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"option '{name}' must be a sequence of layer sizes, got {value!r}")
    sizes: list[int] = []
    for size in value:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ConfigError(f"option '{name}' must hold integers >= 1, got {tuple(value)!r}")
        sizes.append(int(size))
    if not sizes and not allow_empty:
        raise ConfigError(f"option '{name}' needs at least one layer size")
    return tuple(sizes)


def _check_choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(f"option '{name}' = {value!r} is unknown (allowed: {', '.join(allowed)})")
    return str(value)


def _check_fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"option '{name}' must be a number in [0, 1), got {value!r}")
    return float(value)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"option '{name}' must be true or false, got {value!r}")
    return value


def _check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real)
    if not ok or not (float(value) >= 0.0 if allow_zero else float(value) > 0.0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"option '{name}' must be a number {bound}, got {value!r}")
    return float(value)


def dense_stack(
    n_inputs: int,
    hidden: Sequence[int],
    activation: str,
    *,
    batch_norm: bool = False,
    dropout: float = 0.0,
    noise_std: float = 0.0,
) -> tuple[nn.Sequential, int]:
    """``(Linear -> [BatchNorm1d] -> act -> [GaussianNoise] -> [Dropout]) x len(hidden)`` and its output width.

    The linear, activation and dropout layers act on the last axis, so the
    stack also serves per object on ``(N, K, F)`` when ``batch_norm`` is off.
    """
    layers: list[nn.Module] = []
    width = int(n_inputs)
    for size in hidden:
        layers.append(nn.Linear(width, int(size)))
        if batch_norm:
            layers.append(nn.BatchNorm1d(int(size)))
        layers.append(make_activation(activation))
        if noise_std > 0.0:
            layers.append(GaussianNoise(noise_std))
        if dropout > 0.0:
            layers.append(nn.Dropout(dropout))
        width = int(size)
    return nn.Sequential(*layers), width


class GaussianHead(nn.Module):
    """Map raw ``(N, 2)`` outputs to ``(mu, sigma)``: ``mu = raw[:, 0]``, ``sigma = softplus(raw[:, 1]) + min_sigma``."""

    def __init__(self, min_sigma: float = 1e-3) -> None:
        super().__init__()
        self.min_sigma = _check_positive("min_sigma", min_sigma)

    def forward(self, raw: Tensor) -> Tensor:
        """``(N, 2)`` raw values to ``(N, 2)`` = ``[mu, sigma]`` with ``sigma > 0``."""
        return torch.cat([raw[:, :1], F.softplus(raw[:, 1:2]) + self.min_sigma], dim=1)

    def extra_repr(self) -> str:
        """Show the width floor in the module's repr."""
        return f"min_sigma={self.min_sigma}"


def _check_n_outputs(n_outputs: Any) -> int:
    if isinstance(n_outputs, bool) or not isinstance(n_outputs, numbers.Integral) or n_outputs < 1:
        raise ConfigError(f"n_outputs must be an integer >= 1, got {n_outputs!r}")
    return int(n_outputs)


def output_head(width: int, n_outputs: int, *, gaussian_head: bool = False, min_sigma: float = 1e-3) -> nn.Sequential:
    """``Linear(width, n_outputs)``, followed by a :class:`GaussianHead` when ``gaussian_head`` (needs 2 outputs)."""
    n_outputs = _check_n_outputs(n_outputs)
    if _check_bool("gaussian_head", gaussian_head) and n_outputs != 2:
        raise ConfigError(f"gaussian_head needs n_outputs = 2 (mu, sigma), got {n_outputs}")
    layers: list[nn.Module] = [nn.Linear(int(width), int(n_outputs))]
    if gaussian_head:
        layers.append(GaussianHead(min_sigma))
    return nn.Sequential(*layers)


_POOLINGS = ("mean", "sum")


def masked_pool(phi: nn.Module, objects: Tensor, mask: Tensor, pooling: str = "sum") -> Tensor:
    """Pool ``phi`` over the real objects of a padded set: ``(N, K, F)``, mask ``(N, K)`` -> ``(N, width)``.

    Padded objects are zeroed before ``phi`` (so NaN or inf padding cannot
    leak into the gradients) and their embeddings are zeroed before the sum,
    so they never contribute.  ``"mean"`` divides by max(1, number of real
    objects); an empty set pools to zeros either way.
    """
    keep = mask.to(torch.bool).unsqueeze(-1)
    x = torch.where(keep, objects, torch.zeros_like(objects))
    embedded = phi(x)
    embedded = torch.where(keep, embedded, torch.zeros_like(embedded))
    pooled = embedded.sum(dim=1)
    if pooling == "mean":
        count = keep.to(pooled.dtype).sum(dim=1).clamp(min=1.0)
        pooled = pooled / count
    return pooled


# --------------------------------------------------------------------------- networks


class MLP(nn.Module):
    """Multilayer perceptron on the event features (regression or classification).

    Layout: ``GaussianNoise`` on the inputs (when ``noise_std > 0``), then per
    hidden size ``Linear -> [BatchNorm1d] -> activation -> [GaussianNoise] ->
    [Dropout]``, then :func:`output_head`.  With the VH options it has the
    layers of :class:`MLPClassifier`; outputs are raw (logits for a
    classifier, no softmax).
    """

    input_names: tuple[str, ...] = ("event",)

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        hidden: Sequence[int] = (256, 256, 256),
        activation: str = "relu",
        batch_norm: bool = False,
        dropout: float = 0.0,
        noise_std: float = 0.0,
        gaussian_head: bool = False,
        min_sigma: float = 1e-3,
    ) -> None:
        super().__init__()
        if n_inputs < 1:
            raise ConfigError(f"the MLP needs at least one event feature, got {n_inputs}")
        hidden = _check_sizes("hidden", hidden)
        noise_std = _check_positive("noise_std", noise_std, allow_zero=True)
        self.n_inputs = int(n_inputs)
        self.n_outputs = _check_n_outputs(n_outputs)
        body, width = dense_stack(
            self.n_inputs,
            hidden,
            activation,
            batch_norm=_check_bool("batch_norm", batch_norm),
            dropout=_check_fraction("dropout", dropout),
            noise_std=noise_std,
        )
        noise: list[nn.Module] = [GaussianNoise(noise_std)] if noise_std > 0.0 else []
        head = output_head(width, n_outputs, gaussian_head=gaussian_head, min_sigma=min_sigma)
        self.layers = nn.Sequential(*noise, *body, *head)

    def forward(self, event: Tensor) -> Tensor:
        """Map event features ``(N, n_inputs)`` to ``(N, n_outputs)``."""
        return self.layers(event)


class DeepSets(nn.Module):
    """Deep Sets network (Zaheer et al. 2017; Energy Flow Network, Komiske et al. 2019) on one padded set.

    ``phi`` embeds every real object (``Linear -> act [-> Dropout]`` per size,
    shared over objects), :func:`masked_pool` sums (or averages) the
    embeddings, ``rho`` maps ``[pooled, event]`` (the per-row inputs, e.g. the
    jet 4-vector) through ``Linear -> [BatchNorm1d] -> act [-> Dropout]``
    layers to :func:`output_head`.  Permutation invariant over the objects;
    padded objects do not contribute and an empty set gives a finite output.
    No batch norm in ``phi``: its batch statistics would see the padding.

    ``input_names`` = ``("event", set, set + "_mask")`` (without ``"event"``
    when ``n_event == 0``).
    """

    def __init__(
        self,
        n_event: int,
        n_object_features: int,
        n_outputs: int,
        set_name: str = "constituents",
        phi: Sequence[int] = (100, 100, 128),
        rho: Sequence[int] = (100, 100, 100),
        activation: str = "relu",
        pooling: str = "sum",
        phi_dropout: float = 0.0,
        rho_dropout: float = 0.0,
        batch_norm: bool = False,
        gaussian_head: bool = False,
        min_sigma: float = 1e-3,
    ) -> None:
        super().__init__()
        if n_event < 0 or n_object_features < 1:
            raise ConfigError(
                f"deep set needs >= 1 feature per object and >= 0 event features, got {n_object_features}, {n_event}"
            )
        self.n_event = int(n_event)
        self.n_object_features = int(n_object_features)
        self.n_outputs = _check_n_outputs(n_outputs)
        self.set_name = str(set_name)
        self.pooling = _check_choice("pooling", pooling, _POOLINGS)
        self.input_names: tuple[str, ...] = (
            *(("event",) if self.n_event else ()),
            self.set_name,
            f"{self.set_name}_mask",
        )
        self.phi, pooled = dense_stack(
            self.n_object_features,
            _check_sizes("phi", phi, allow_empty=False),
            activation,
            dropout=_check_fraction("phi_dropout", phi_dropout),
        )
        self.rho, width = dense_stack(
            pooled + self.n_event,
            _check_sizes("rho", rho),
            activation,
            batch_norm=_check_bool("batch_norm", batch_norm),
            dropout=_check_fraction("rho_dropout", rho_dropout),
        )
        self.head = output_head(width, n_outputs, gaussian_head=gaussian_head, min_sigma=min_sigma)

    def forward(self, *inputs: Tensor) -> Tensor:
        """``([event (N, E),] objects (N, K, F), mask (N, K) bool)`` -> ``(N, n_outputs)``."""
        if len(inputs) != len(self.input_names):
            raise TypeError(f"DeepSets takes {len(self.input_names)} inputs {self.input_names}, got {len(inputs)}")
        objects, mask = inputs[-2], inputs[-1]
        x = masked_pool(self.phi, objects, mask, self.pooling)
        if self.n_event:
            x = torch.cat([x, inputs[0]], dim=1)
        return self.head(self.rho(x))


_GLOBAL_POOLS = ("max", "maxmean", "mean")


class FiLMCNN(nn.Module):
    """Electron energy regression (seed 004, best "FiLM: scalar - top: track"): CNN + FiLM + track Deep Set.

    - ``cells`` ``(N, n_cells, C)`` (C = 2: energy, time) is split into one
      image per calorimeter layer, ``(N, C, eta, phi)`` with the
      ``layer_shapes`` (cell order of
      :func:`hepchain.detector.calo_images.cell_layout`: layer-major, then
      eta, then phi).  The layers have different granularity, so each has
      its own branch: per size in ``conv_channels`` a 3x3 convolution with
      padding 1 -> [BatchNorm2d without affine] -> FiLM -> activation, then a
      global max and/or mean over the image (``global_pool``).
    - FiLM (Perez et al. 2018): the event scalars go through the scalar net
      (``scalar_hidden``) and the FiLM generator (``film_hidden`` then a
      linear layer) to one ``(gamma, beta)`` pair per channel of every
      convolution; a feature map ``h`` becomes ``(1 + gamma) h + beta``.  The
      scalars enter only here, as in the seed's best architecture.
    - The track branch is a Deep Set over the padded tracks (``track_phi``,
      masked sum or mean pooling); it joins the pooled image features at the
      top dense layers (``top``), which end in :func:`output_head`.

    ``input_names`` = ``("event", image, tracks, tracks + "_mask")`` (no
    track inputs when ``n_track_features == 0``).
    """

    def __init__(
        self,
        n_event: int,
        layer_shapes: Sequence[tuple[int, int]],
        n_cell_features: int,
        n_track_features: int,
        n_outputs: int,
        image_name: str = "cells",
        track_name: str = "tracks",
        conv_channels: Sequence[int] = (16, 16),
        scalar_hidden: Sequence[int] = (256,),
        film_hidden: Sequence[int] = (256, 256),
        track_phi: Sequence[int] = (128, 64, 32, 16),
        track_pooling: str = "sum",
        top: Sequence[int] = (256, 256),
        activation: str = "relu",
        batch_norm: bool = True,
        global_pool: str = "maxmean",
        dropout: float = 0.0,
        gaussian_head: bool = False,
        min_sigma: float = 1e-3,
    ) -> None:
        super().__init__()
        if n_event < 1:
            raise ConfigError("the FiLM CNN needs event scalars to condition on, the spec has none")
        if n_cell_features < 1 or n_track_features < 0:
            raise ConfigError(f"bad input sizes: {n_cell_features} cell and {n_track_features} track features")
        shapes = [(int(ne), int(nphi)) for ne, nphi in layer_shapes]
        if not shapes or any(ne < 1 or nphi < 1 for ne, nphi in shapes):
            raise ConfigError(f"layer_shapes must be non-empty (eta, phi) pairs >= 1, got {layer_shapes!r}")
        channels = _check_sizes("conv_channels", conv_channels, allow_empty=False)
        batch_norm = _check_bool("batch_norm", batch_norm)
        self.global_pool = _check_choice("global_pool", global_pool, _GLOBAL_POOLS)
        self.track_pooling = _check_choice("track_pooling", track_pooling, _POOLINGS)
        self.n_event = int(n_event)
        self.n_cell_features = int(n_cell_features)
        self.n_track_features = int(n_track_features)
        self.n_outputs = _check_n_outputs(n_outputs)
        self.layer_shapes: tuple[tuple[int, int], ...] = tuple(shapes)
        self.n_cells = sum(ne * nphi for ne, nphi in shapes)
        names: list[str] = ["event", str(image_name)]
        if self.n_track_features:
            names += [str(track_name), f"{track_name}_mask"]
        self.input_names: tuple[str, ...] = tuple(names)

        # per-layer conv branches; FiLM parameters are laid out per convolution as [gamma (c), beta (c)]
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.acts = nn.ModuleList()
        self._film_slices: list[list[tuple[int, int]]] = []
        offset = 0
        for _ in shapes:
            convs, norms, acts, slices = nn.ModuleList(), nn.ModuleList(), nn.ModuleList(), []
            width = self.n_cell_features
            for size in channels:
                convs.append(nn.Conv2d(width, size, kernel_size=3, padding=1))
                norms.append(nn.BatchNorm2d(size, affine=False) if batch_norm else nn.Identity())
                acts.append(make_activation(activation))
                slices.append((offset, size))
                offset += 2 * size
                width = size
            self.convs.append(convs)
            self.norms.append(norms)
            self.acts.append(acts)
            self._film_slices.append(slices)
        self.n_film = offset
        scalar_net, width = dense_stack(
            self.n_event, _check_sizes("scalar_hidden", scalar_hidden), activation, batch_norm=batch_norm
        )
        film_net, width = dense_stack(
            width, _check_sizes("film_hidden", film_hidden), activation, batch_norm=batch_norm
        )
        self.film = nn.Sequential(*scalar_net, *film_net, nn.Linear(width, self.n_film))

        image_width = len(shapes) * channels[-1] * (2 if self.global_pool == "maxmean" else 1)
        track_width = 0
        if self.n_track_features:
            self.track_phi, track_width = dense_stack(
                self.n_track_features, _check_sizes("track_phi", track_phi, allow_empty=False), activation
            )
        self.top, width = dense_stack(
            image_width + track_width,
            _check_sizes("top", top),
            activation,
            batch_norm=batch_norm,
            dropout=_check_fraction("dropout", dropout),
        )
        self.head = output_head(width, n_outputs, gaussian_head=gaussian_head, min_sigma=min_sigma)

    def _pool_image(self, h: Tensor) -> Tensor:
        if self.global_pool == "max":
            return h.amax(dim=(2, 3))
        if self.global_pool == "mean":
            return h.mean(dim=(2, 3))
        return torch.cat([h.amax(dim=(2, 3)), h.mean(dim=(2, 3))], dim=1)

    def forward(self, *inputs: Tensor) -> Tensor:
        """``(event (N, E), cells (N, n_cells, C)[, tracks (N, T, F), tracks_mask (N, T) bool])`` -> ``(N, n_outputs)``."""
        if len(inputs) != len(self.input_names):
            raise TypeError(f"FiLMCNN takes {len(self.input_names)} inputs {self.input_names}, got {len(inputs)}")
        event, cells = inputs[0], inputs[1]
        film = self.film(event)
        features: list[Tensor] = []
        start = 0
        for index, (n_eta, n_phi) in enumerate(self.layer_shapes):
            stop = start + n_eta * n_phi
            h = cells[:, start:stop, :].reshape(-1, n_eta, n_phi, self.n_cell_features).permute(0, 3, 1, 2)
            start = stop
            for conv, norm, act, (offset, size) in zip(
                self.convs[index], self.norms[index], self.acts[index], self._film_slices[index], strict=True
            ):
                gamma = film[:, offset : offset + size, None, None]
                beta = film[:, offset + size : offset + 2 * size, None, None]
                h = act(norm(conv(h)) * (1.0 + gamma) + beta)
            features.append(self._pool_image(h))
        if self.n_track_features:
            features.append(masked_pool(self.track_phi, inputs[2], inputs[3], self.track_pooling))
        return self.head(self.top(torch.cat(features, dim=1)))


# --------------------------------------------------------------------------- from a feature spec


def _group_width(spec: FeatureSpec, group: str) -> int:
    """Number of value features of ``group`` (its mask excluded)."""
    return len([n for n in spec.group_names(group) if n != f"{group}_mask"])


def _group_length(spec: FeatureSpec, group: str) -> int:
    """K (objects or cells per row) of a set or image group."""
    return int(spec[spec.group_names(group)[0]].shape[0])


def set_groups(spec: FeatureSpec) -> list[str]:
    """The padded set groups of ``spec`` (those with a ``<group>_mask`` feature), in input order."""
    return [g for g in spec.groups if g != "event" and f"{g}_mask" in spec.group_names(g)]


def _n_event(spec: FeatureSpec) -> int:
    return _group_width(spec, "event") if "event" in spec.groups else 0


def _pick_set(spec: FeatureSpec, option: str, value: str | None, *, required: bool = True) -> str | None:
    sets = set_groups(spec)
    if value is None:
        if len(sets) == 1:
            return sets[0]
        if not sets and not required:
            return None
        raise ConfigError(
            f"option '{option}' must name one of the sets of study '{spec.study}' (allowed: {', '.join(sets) or 'none'})"
        )
    if value not in sets:
        raise ConfigError(
            f"option '{option}' = {value!r} is not a set of study '{spec.study}' (allowed: {', '.join(sets) or 'none'})"
        )
    return value


def _layer_shapes(spec: FeatureSpec, image: str) -> list[tuple[int, int]]:
    """(eta, phi) of each calorimeter layer, from :func:`~hepchain.detector.calo_images.cell_layout`."""
    from hepchain.detector.calo_images import cell_layout

    layout = cell_layout()
    n_cells = _group_length(spec, image)
    if layout.n_cells != n_cells:
        raise ConfigError(
            f"image '{image}' of study '{spec.study}' has {n_cells} cells, the calorimeter layout {layout.n_cells}"
        )
    shapes = []
    for layer in range(len(layout.offsets) - 1):
        block = layout.block(layer)
        shapes.append((int(layout.local_eta[block].max()) + 1, int(layout.local_phi[block].max()) + 1))
    return shapes


def _build_mlp(spec: FeatureSpec, n_outputs: int, options: dict[str, Any]) -> nn.Module:
    if "event" not in spec.groups:
        raise ConfigError(f"network kind 'mlp' needs event features, study '{spec.study}' has none")
    return MLP(_n_event(spec), n_outputs, **options)


def _build_deepsets(spec: FeatureSpec, n_outputs: int, options: dict[str, Any]) -> nn.Module:
    name = _pick_set(spec, "set_group", options.pop("set_group"))
    assert name is not None
    return DeepSets(_n_event(spec), _group_width(spec, name), n_outputs, set_name=name, **options)


def _build_film_cnn(spec: FeatureSpec, n_outputs: int, options: dict[str, Any]) -> nn.Module:
    image = options.pop("image_group")
    images = [g for g in spec.groups if g != "event" and g not in set_groups(spec)]
    if image not in images:
        raise ConfigError(
            f"option 'image_group' = {image!r} is not an image of study '{spec.study}' "
            f"(allowed: {', '.join(images) or 'none'})"
        )
    tracks = _pick_set(spec, "track_group", options.pop("track_group"), required=False)
    return FiLMCNN(
        _n_event(spec),
        _layer_shapes(spec, image),
        _group_width(spec, image),
        _group_width(spec, tracks) if tracks else 0,
        n_outputs,
        image_name=image,
        track_name=tracks or "tracks",
        **options,
    )


#: Options of each kind with their defaults (what :func:`build_network` accepts).
NETWORK_OPTIONS: dict[str, dict[str, Any]] = {
    "mlp": {
        "hidden": (256, 256, 256),
        "activation": "relu",
        "batch_norm": False,
        "dropout": 0.0,
        "noise_std": 0.0,
        "gaussian_head": False,
        "min_sigma": 1e-3,
    },
    "deepsets": {
        "set_group": None,
        "phi": (100, 100, 128),
        "rho": (100, 100, 100),
        "activation": "relu",
        "pooling": "sum",
        "phi_dropout": 0.0,
        "rho_dropout": 0.0,
        "batch_norm": False,
        "gaussian_head": False,
        "min_sigma": 1e-3,
    },
    "film_cnn": {
        "image_group": "cells",
        "track_group": None,
        "conv_channels": (16, 16),
        "scalar_hidden": (256,),
        "film_hidden": (256, 256),
        "track_phi": (128, 64, 32, 16),
        "track_pooling": "sum",
        "top": (256, 256),
        "activation": "relu",
        "batch_norm": True,
        "global_pool": "maxmean",
        "dropout": 0.0,
        "gaussian_head": False,
        "min_sigma": 1e-3,
    },
}

_BUILDERS = {"mlp": _build_mlp, "deepsets": _build_deepsets, "film_cnn": _build_film_cnn}


def build_network(kind: str, spec: FeatureSpec, n_outputs: int, **options: Any) -> nn.Module:
    """Build a network of ``kind`` with its input sizes read from ``spec``.

    Kinds and options (defaults in :data:`NETWORK_OPTIONS`):

    ``"mlp"`` (:class:`MLP`, input ``event``)
        ``hidden`` (256, 256, 256), ``activation`` "relu" ("elu", "relu",
        "softplus"), ``batch_norm`` False, ``dropout`` 0, ``noise_std`` 0
        (Gaussian noise on the inputs and after every hidden layer, training
        only), ``gaussian_head`` False, ``min_sigma`` 1e-3.
    ``"deepsets"`` (:class:`DeepSets`, inputs ``event``, the set and its mask)
        ``set_group`` None (the spec's only padded set), ``phi`` (100, 100,
        128) and ``rho`` (100, 100, 100) (the Energy Flow Network defaults of
        Komiske et al.; the seed gives no sizes), ``activation`` "relu",
        ``pooling`` "sum" (or "mean"), ``phi_dropout`` and ``rho_dropout`` 0
        (the seed's "dropout cluster" / "dropout jet"), ``batch_norm`` False
        (rho only), ``gaussian_head`` False, ``min_sigma`` 1e-3.
    ``"film_cnn"`` (:class:`FiLMCNN`, inputs ``event``, ``cells``, the tracks and their mask)
        ``image_group`` "cells", ``track_group`` None (the spec's only set,
        or no track branch without one), ``conv_channels`` (16, 16) (two 3x3
        convolutions per layer branch, where the seed has 3 blocks of depth
        4), ``scalar_hidden`` (256,) (the seed's ScalarNet), ``film_hidden``
        (256, 256) (the seed's FiLM generator has (512, 1024)),
        ``track_phi`` (128, 64, 32, 16) (the seed's TrackNet units),
        ``track_pooling`` "sum", ``top`` (256, 256) (the seed's top has
        (512, 512) and an output ReLU, left out: the head is linear); the
        sizes are cut so that a CPU forward of 256 rows stays under 50 ms
        (about 30 ms on one core), ``activation`` "relu", ``batch_norm`` True (scalar net, FiLM
        generator, convolutions, top; never per track), ``global_pool``
        "maxmean" (the seed's global max pooling plus a mean, which keeps
        the layer's total energy), ``dropout`` 0 (top), ``gaussian_head``
        False, ``min_sigma`` 1e-3.

    Raises :class:`~hepchain.errors.ConfigError` for an unknown kind or
    option, or a bad value, naming it and the allowed values.
    """
    if kind not in NETWORK_OPTIONS:
        raise ConfigError(f"network kind '{kind}' is unknown (allowed: {', '.join(sorted(NETWORK_OPTIONS))})")
    defaults = NETWORK_OPTIONS[kind]
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ConfigError(
            f"option '{unknown[0]}' is unknown for network kind '{kind}' (allowed: {', '.join(sorted(defaults))})"
        )
    merged = {**copy.deepcopy(defaults), **options}
    return _BUILDERS[kind](spec, n_outputs, merged)


#: Default architecture of each study (its seed's network), for :func:`build_study_network`.
STUDY_NETWORKS: dict[str, dict[str, Any]] = {
    # seed 000: 3 hidden dense layers of 256 with batch normalization (Keras, MSE on the truth pT components)
    "recoil": {"kind": "mlp", "hidden": (256, 256, 256), "activation": "relu", "batch_norm": True},
    # seed 001: N_L = 3 hidden layers of N_N = 1000, softplus (Glorot uniform init, MAPE loss: the engine's business)
    "ditau": {"kind": "mlp", "hidden": (1000, 1000, 1000), "activation": "softplus", "batch_norm": False},
    # seed 002: Deep Sets, constituent net + jet net, sum pooling, Gaussian (mu, sigma) output; EFN sizes
    "jets": {
        "kind": "deepsets",
        "phi": (100, 100, 128),
        "rho": (100, 100, 100),
        "activation": "relu",
        "pooling": "sum",
        "gaussian_head": True,
    },
    # seed 004, best architecture "FiLM: scalar - top: track"; FiLM generator and top smaller than the seed's
    # (512, 1024) and (512, 512) to keep a CPU forward of 256 rows under 50 ms
    "electrons": {
        "kind": "film_cnn",
        "conv_channels": (16, 16),
        "scalar_hidden": (256,),
        "film_hidden": (256, 256),
        "track_phi": (128, 64, 32, 16),
        "top": (256, 256),
        "activation": "relu",
        "batch_norm": True,
        "global_pool": "maxmean",
    },
    # seed 003: ten ELU layers with batch norm and Gaussian noise 0.1 (the layers of MLPClassifier)
    "vh": {"kind": "mlp", "hidden": VH_HIDDEN, "activation": "elu", "noise_std": 0.1, "batch_norm": True},
}


def build_study_network(study: str, spec: FeatureSpec, n_outputs: int, **overrides: Any) -> nn.Module:
    """The default network of ``study`` (:data:`STUDY_NETWORKS`), with ``overrides`` of its options."""
    if study not in STUDY_NETWORKS:
        raise ConfigError(f"study '{study}' has no default network (allowed: {', '.join(sorted(STUDY_NETWORKS))})")
    options = {**copy.deepcopy(STUDY_NETWORKS[study]), **overrides}
    kind = options.pop("kind")
    return build_network(kind, spec, n_outputs, **options)


def random_inputs(spec: FeatureSpec, input_names: Sequence[str], n: int = 4, *, seed: int = 0) -> dict[str, Tensor]:
    """Random inputs of the shapes of ``spec`` for ``input_names`` (e.g. an ONNX export example, tests).

    Values are standard normal float32; a set's mask keeps a random number
    (0 to K) of leading objects per row, and its padded values are 0.
    """
    generator = torch.Generator().manual_seed(int(seed))
    out: dict[str, Tensor] = {}
    masks: dict[str, Tensor] = {}
    for name in input_names:
        if name.removesuffix("_mask") not in spec.groups:
            raise ConfigError(
                f"input '{name}' is not a group of study '{spec.study}' (groups: {', '.join(spec.groups)})"
            )
    for name in input_names:
        if name == "event":
            out[name] = torch.randn(n, _group_width(spec, name), generator=generator)
        elif name.endswith("_mask"):
            k = _group_length(spec, name.removesuffix("_mask"))
            count = torch.randint(0, k + 1, (n, 1), generator=generator)
            masks[name] = out[name] = torch.arange(k)[None, :] < count
        else:
            shape = (n, _group_length(spec, name), _group_width(spec, name))
            out[name] = torch.randn(*shape, generator=generator)
    for name, mask in masks.items():
        values = name.removesuffix("_mask")
        if values in out:
            out[values] = out[values] * mask[..., None]
    return out


def describe(model: nn.Module) -> Mapping[str, Any]:
    """Class, input names and number of trainable parameters of a network (for logs and reports)."""
    return {
        "class": type(model).__name__,
        "input_names": list(getattr(model, "input_names", ())),
        "n_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
