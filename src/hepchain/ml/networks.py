"""Plain ``torch.nn`` networks.

The networks here take their sizes as arguments and know nothing of the data,
the scaling or the training loop; the Lightning module wraps them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from hepchain.errors import ConfigError

#: Hidden layer sizes of the VH multiclassifier (ATLAS VH(->WW), Basso 2020).
VH_HIDDEN: tuple[int, ...] = (20, 20, 40, 70, 20, 50, 40, 30, 40, 30)

_ACTIVATIONS: dict[str, type[nn.Module]] = {"elu": nn.ELU, "relu": nn.ReLU}


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
    """Return a fresh activation module for ``name`` (``"elu"`` or ``"relu"``)."""
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
