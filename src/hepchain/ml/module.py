"""Lightning module: training logic for a scaler + classifier network."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from lightning.pytorch import LightningModule
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn

from hepchain.ml.losses import weighted_cross_entropy
from hepchain.ml.networks import VH_HIDDEN, MLPClassifier
from hepchain.ml.scaling import RobustScaler

Batch = tuple[Tensor, Tensor, Tensor]


def signal_auc(prob_signal: np.ndarray, label: np.ndarray, weight: np.ndarray) -> float:
    """Weighted ROC AUC of class 0 (signal) against all other classes.

    Negative weights are clipped to 0 (a ROC curve needs monotonic
    cumulative sums).  Returns NaN when one side has no positive weight.
    """
    is_signal = label == 0
    w = np.clip(weight, 0.0, None)
    if not (w[is_signal].sum() > 0 and w[~is_signal].sum() > 0):
        return float("nan")
    return float(roc_auc_score(is_signal, prob_signal, sample_weight=w))


class ClassifierModule(LightningModule):
    """Train ``RobustScaler -> MLPClassifier`` with a weighted cross-entropy.

    Batches are ``(x, y, w)`` with raw features ``x``, integer labels ``y``
    and (class-balanced) weights ``w``.  Per epoch it logs ``train_loss`` and
    ``val_loss`` (sum w CE / sum w over all rows of the epoch) and
    ``val_auc`` (weighted ROC AUC of class 0 vs the rest, with the same
    weights, over the whole validation set).
    """

    def __init__(
        self,
        n_inputs: int,
        hidden: Sequence[int] = VH_HIDDEN,
        n_classes: int = 6,
        activation: str = "elu",
        noise_std: float = 0.1,
        batch_norm: bool = True,
        lr: float = 0.00222,
        scaler: RobustScaler | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["scaler"])
        if scaler is not None and scaler.n_features != n_inputs:
            raise ValueError(
                f"scaler has {scaler.n_features} features, the network {n_inputs} inputs"
            )
        self.scaler = scaler if scaler is not None else RobustScaler(n_inputs)
        self.network = MLPClassifier(
            n_inputs, tuple(hidden), n_classes, activation, noise_std, batch_norm
        )
        self.lr = float(lr)
        self._train_sums: list[Tensor] = []
        self._val_outputs: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []

    def forward(self, x: Tensor) -> Tensor:
        """Map raw features to class logits."""
        return self.network(self.scaler(x))

    def inference_model(self) -> nn.Module:
        """The raw-features-to-logits model (shares this module's layers)."""
        return nn.Sequential(self.scaler, self.network)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam with the configured learning rate."""
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    def on_train_epoch_start(self) -> None:
        """Reset the epoch's loss sums."""
        self._train_sums = []

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """Weighted cross-entropy of one batch."""
        x, y, w = batch
        loss = weighted_cross_entropy(self(x), y, w)
        weight_sum = w.sum().detach()
        self._train_sums.append(torch.stack([loss.detach() * weight_sum, weight_sum]))
        return loss

    def on_train_epoch_end(self) -> None:
        """Log the epoch's weighted mean training loss."""
        if self._train_sums:
            numerator, denominator = torch.stack(self._train_sums).sum(dim=0)
            self.log(
                "train_loss", numerator / denominator, on_epoch=True, prog_bar=True
            )

    def on_validation_epoch_start(self) -> None:
        """Reset the collected validation outputs."""
        self._val_outputs = []

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        """Collect probabilities, labels, weights and per-row losses."""
        x, y, w = batch
        logits = self(x)
        ce = nn.functional.cross_entropy(logits, y, reduction="none")
        self._val_outputs.append((torch.softmax(logits, dim=1)[:, 0], y, w, ce))

    def on_validation_epoch_end(self) -> None:
        """Log ``val_loss`` and ``val_auc`` over the whole validation set."""
        if not self._val_outputs:
            return
        prob, y, w, ce = (
            torch.cat(parts) for parts in zip(*self._val_outputs, strict=True)
        )
        self._val_outputs = []
        self.log("val_loss", (w * ce).sum() / w.sum(), on_epoch=True, prog_bar=True)
        auc = signal_auc(
            prob.float().cpu().numpy(), y.cpu().numpy(), w.float().cpu().numpy()
        )
        self.log("val_auc", auc, on_epoch=True, prog_bar=True)

    def predict_step(self, batch: Batch | Tensor, batch_idx: int) -> Tensor:
        """Softmax probabilities of a batch (``x`` or ``(x, ...)``)."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return torch.softmax(self(x), dim=1)

    @torch.no_grad()
    def predict_proba(
        self, x: np.ndarray | Tensor, batch_size: int = 65536
    ) -> np.ndarray:
        """Softmax probabilities ``[N, n_classes]`` for raw features ``x``, in eval mode."""
        was_training = self.training
        self.eval()
        try:
            if isinstance(x, Tensor):
                data = x.to(device=self.device, dtype=torch.float32)
            else:
                data = torch.tensor(np.asarray(x, dtype=np.float32), device=self.device)
            parts = [
                torch.softmax(self(data[i : i + batch_size]), dim=1)
                for i in range(0, len(data), batch_size)
            ]
            if not parts:
                return np.zeros((0, self.network.n_classes), dtype=np.float32)
            return torch.cat(parts).cpu().numpy()
        finally:
            self.train(was_training)
