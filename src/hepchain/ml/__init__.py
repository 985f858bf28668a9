"""Machine learning for hepchain: networks, data, training logic, export.

The split keeps three concerns apart: plain ``torch.nn`` networks that take
sizes as arguments (:mod:`~hepchain.ml.networks`), a Lightning data module
serving device-resident tensors (:mod:`~hepchain.ml.datamodule`) and a
Lightning module holding the training logic (:mod:`~hepchain.ml.module`).
:func:`train_fold` runs one fold of a K-fold cross-training and exports it to
ONNX; :class:`OnnxClassifier` runs inference from the exported file.
"""

from __future__ import annotations

from hepchain.ml.datamodule import TensorBatches, TensorDataModule
from hepchain.ml.export import OnnxClassifier, check_parity, export_onnx
from hepchain.ml.losses import class_balanced_weights, weighted_cross_entropy
from hepchain.ml.module import ClassifierModule
from hepchain.ml.networks import VH_HIDDEN, GaussianNoise, MLPClassifier
from hepchain.ml.scaling import RobustScaler
from hepchain.ml.train import split_indices, train_fold

__all__ = [
    "VH_HIDDEN",
    "ClassifierModule",
    "GaussianNoise",
    "MLPClassifier",
    "OnnxClassifier",
    "RobustScaler",
    "TensorBatches",
    "TensorDataModule",
    "check_parity",
    "class_balanced_weights",
    "export_onnx",
    "split_indices",
    "train_fold",
    "weighted_cross_entropy",
]
