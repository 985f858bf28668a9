"""ONNX export of a trained classifier and batched ONNX Runtime inference.

The exported graph is ``scaler -> network -> softmax`` in eval mode: input
``features`` (raw feature values, float32 ``[batch, n_inputs]``), output
``probabilities`` (float32 ``[batch, n_classes]``), with a dynamic batch axis.
The legacy TorchScript exporter (``dynamo=False``) is used: the default
``torch.export`` exporter needs ``onnxscript``, which is not a dependency.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor, nn

from hepchain.errors import InputFileError
from hepchain.ml.onnx_export import open_session

INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"


class _ProbabilityModel(nn.Module):
    """Wrap a raw-features-to-logits model and apply a softmax."""

    def __init__(self, logits_model: nn.Module) -> None:
        super().__init__()
        self.logits_model = logits_model

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.logits_model(x), dim=1)


def probability_model(model: nn.Module) -> nn.Module:
    """A CPU, eval-mode copy of ``model`` followed by a softmax.

    ``model`` maps raw features to logits; a module with an
    ``inference_model()`` method (e.g. ``ClassifierModule``) contributes that
    (scaler + network) instead of itself, so no trainer state is copied.
    """
    inner = model.inference_model() if hasattr(model, "inference_model") else model
    return _ProbabilityModel(copy.deepcopy(inner)).cpu().float().eval()


def export_onnx(module_or_model: nn.Module, n_inputs: int, path: Path | str) -> Path:
    """Export ``module_or_model`` + softmax to ONNX at ``path``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = probability_model(module_or_model)
    example = torch.zeros(2, int(n_inputs), dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True,
            dynamo=False,
        )
    return path


class OnnxClassifier:
    """Batched inference through ONNX Runtime for an exported classifier.

    Uses the CUDA execution provider when ONNX Runtime offers it, else CPU.
    Inference only: nothing is trained or fitted here.
    """

    def __init__(self, path: Path | str, *, threads: int | None = None) -> None:
        self.path = Path(path)
        self.session = open_session(self.path, threads=threads)
        inputs = self.session.get_inputs()
        outputs = self.session.get_outputs()
        if [i.name for i in inputs] != [INPUT_NAME] or [o.name for o in outputs] != [
            OUTPUT_NAME
        ]:
            raise InputFileError(
                f"{self.path}: expected input '{INPUT_NAME}' and output '{OUTPUT_NAME}'"
            )
        self.n_inputs = int(inputs[0].shape[1])
        self.n_classes = int(outputs[0].shape[1])

    def predict(self, x: np.ndarray, batch_size: int = 65536) -> np.ndarray:
        """Class probabilities ``[N, n_classes]`` for raw features ``x [N, n_inputs]``."""
        data = np.ascontiguousarray(x, dtype=np.float32)
        if data.ndim != 2 or data.shape[1] != self.n_inputs:
            raise ValueError(f"x has shape {data.shape}, expected [N, {self.n_inputs}]")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        out = np.empty((data.shape[0], self.n_classes), dtype=np.float32)
        for start in range(0, data.shape[0], batch_size):
            chunk = data[start : start + batch_size]
            out[start : start + len(chunk)] = self.session.run(
                [OUTPUT_NAME], {INPUT_NAME: chunk}
            )[0]
        return out


def check_parity(
    model: nn.Module, onnx_path: Path | str, x: np.ndarray, atol: float = 1e-5
) -> float:
    """Max abs difference of ``model`` + softmax (eval, CPU) and the ONNX file on ``x``.

    Raises ``RuntimeError`` when the difference exceeds ``atol``.
    """
    data = np.ascontiguousarray(x, dtype=np.float32)
    if data.ndim != 2 or data.shape[0] == 0:
        raise ValueError(
            f"parity check needs a non-empty [N, F] array, got shape {data.shape}"
        )
    with torch.no_grad():
        expected = probability_model(model)(torch.from_numpy(data)).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: data})[0]
    diff = float(np.max(np.abs(got - expected)))
    if not diff <= atol:
        raise RuntimeError(
            f"ONNX parity check failed for {onnx_path}: max abs diff {diff:.3g} > {atol:g}"
        )
    return diff
