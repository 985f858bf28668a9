"""Generic ONNX export of the study networks, batched ONNX Runtime inference and a parity check.

Any network of :mod:`hepchain.ml.networks` (an ``nn.Module`` with
``input_names`` and one ``(N, n_outputs)`` output) is exported in eval mode
with its ``input_names`` as ONNX input names, one output ``"output"``, and a
dynamic batch axis (``"batch"``) on every input and on the output.  Masks stay
bool inputs.  As in :mod:`hepchain.ml.export` (the VH classifier with its
scaler and softmax), the legacy TorchScript exporter is used (``dynamo=False``,
opset :data:`OPSET`): the ``torch.export``-based exporter needs ``onnxscript``,
which is not a dependency.

Parity tolerance: :func:`check_onnx_parity` accepts
``|onnx - torch| <= atol + rtol * |torch|`` elementwise with the defaults
:data:`PARITY_ATOL` = 1e-4 and :data:`PARITY_RTOL` = 1e-4, float32 on the CPU
(both sides compute in float32; summation order differs, so differences of a
few 1e-6 relative are expected and 1e-4 leaves room for deep networks and
sums over many objects).
"""

from __future__ import annotations

import copy
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor, nn

from hepchain.errors import HepchainError, InputFileError

#: Name of the single output of every exported network.
OUTPUT_NAME = "output"
#: ONNX opset of the export (supported by the installed torch's TorchScript exporter and onnxruntime).
OPSET = 17
#: Default tolerances of :func:`check_onnx_parity` (float32).
PARITY_ATOL = 1e-4
PARITY_RTOL = 1e-4

ArrayLike = np.ndarray | Tensor


def input_names_of(model: nn.Module) -> tuple[str, ...]:
    """``model.input_names`` as a tuple; :class:`~hepchain.errors.HepchainError` if the model has none."""
    names = getattr(model, "input_names", None)
    if not names or isinstance(names, str):
        raise HepchainError(f"{type(model).__name__} has no input_names: cannot name its ONNX inputs")
    return tuple(str(n) for n in names)


def _eval_copy(model: nn.Module) -> nn.Module:
    """A CPU float32 eval-mode copy: the caller's model keeps its device, dtype and mode."""
    return copy.deepcopy(model).cpu().float().eval()


def _as_tensor(name: str, value: ArrayLike) -> Tensor:
    tensor = value.detach().cpu() if isinstance(value, Tensor) else torch.from_numpy(np.asarray(value))
    if tensor.dtype == torch.bool or name.endswith("_mask"):
        return tensor.to(torch.bool)
    return tensor.to(torch.float32)


def _ordered(names: Sequence[str], inputs: Mapping[str, ArrayLike], what: str) -> list[Tensor]:
    missing = [n for n in names if n not in inputs]
    if missing:
        raise HepchainError(f"{what}: input '{missing[0]}' is missing (needs {', '.join(names)})")
    tensors = [_as_tensor(n, inputs[n]) for n in names]
    rows = {int(t.shape[0]) if t.ndim else -1 for t in tensors}
    if len(rows) != 1 or -1 in rows:
        shapes = ", ".join(f"{n} {tuple(t.shape)}" for n, t in zip(names, tensors, strict=True))
        raise HepchainError(f"{what}: inputs must share their first (batch) axis, got {shapes}")
    return tensors


def export_network(model: nn.Module, example_inputs: Mapping[str, ArrayLike], path: Path | str) -> Path:
    """Export ``model`` (eval mode, CPU, float32) to ONNX at ``path``; returns the path.

    ``example_inputs`` maps each of ``model.input_names`` to an example
    tensor or array (any batch size >= 1; 2 or more is safer for batch
    norm-free tracing checks).  Inputs are named as ``model.input_names``,
    the output ``"output"``, with a dynamic batch axis on all of them.  The
    file is written to a temporary file in the same directory and moved into
    place with :func:`os.replace`, so ``path`` is either the old file or the
    complete new one.
    """
    path = Path(path)
    names = input_names_of(model)
    eval_model = _eval_copy(model)
    args = tuple(_ordered(names, example_inputs, f"ONNX export of {type(model).__name__}"))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            torch.onnx.export(
                eval_model,
                args,
                str(tmp),
                input_names=list(names),
                output_names=[OUTPUT_NAME],
                dynamic_axes={name: {0: "batch"} for name in (*names, OUTPUT_NAME)},
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _providers(cpu_only: bool) -> list[str]:
    available = ort.get_available_providers()
    preferred = [] if cpu_only else [p for p in ("CUDAExecutionProvider",) if p in available]
    return [*preferred, "CPUExecutionProvider"]


def open_session(path: Path, *, cpu_only: bool = False, threads: int | None = None) -> ort.InferenceSession:
    """An ONNX Runtime session (CUDA provider first unless ``cpu_only``); a missing or bad file raises one line."""
    if not path.is_file():
        raise InputFileError(f"{path}: ONNX model file not found")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=_providers(cpu_only))
    except Exception as exc:  # onnxruntime raises its own exception types
        raise InputFileError(f"{path}: not a loadable ONNX model ({exc})") from exc


class OnnxModel:
    """Batched inference through ONNX Runtime for a network exported by :func:`export_network`.

    Uses the CUDA execution provider first when ONNX Runtime offers it (unless
    ``cpu_only``), then the CPU provider.  ``input_names`` are the model's
    inputs in order; ``n_outputs`` the width of ``"output"``.
    """

    def __init__(self, path: Path | str, *, cpu_only: bool = False, threads: int | None = None) -> None:
        self.path = Path(path)
        self.session = open_session(self.path, cpu_only=cpu_only, threads=threads)
        self._inputs = {i.name: i for i in self.session.get_inputs()}
        self.input_names: tuple[str, ...] = tuple(self._inputs)
        outputs = self.session.get_outputs()
        if [o.name for o in outputs] != [OUTPUT_NAME]:
            raise InputFileError(f"{self.path}: expected one output '{OUTPUT_NAME}', got {[o.name for o in outputs]}")
        width = outputs[0].shape[1] if len(outputs[0].shape) == 2 else None
        self.n_outputs: int | None = width if isinstance(width, int) else None

    def _array(self, name: str, value: ArrayLike) -> np.ndarray:
        data = value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)
        dtype = np.bool_ if self._inputs[name].type == "tensor(bool)" else np.float32
        return np.ascontiguousarray(data, dtype=dtype)

    def predict(self, inputs: Mapping[str, ArrayLike], batch_size: int = 65536) -> np.ndarray:
        """Outputs ``(N, n_outputs)`` float32 for ``inputs`` (name -> array with N rows), ``batch_size`` rows at a time."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise HepchainError(f"{self.path}: input '{missing[0]}' is missing (needs {', '.join(self.input_names)})")
        arrays = {n: self._array(n, inputs[n]) for n in self.input_names}
        rows = {int(a.shape[0]) if a.ndim else -1 for a in arrays.values()}
        if len(rows) != 1 or -1 in rows:
            shapes = ", ".join(f"{n} {a.shape}" for n, a in arrays.items())
            raise HepchainError(f"{self.path}: inputs must share their first (batch) axis, got {shapes}")
        n = rows.pop()
        if n == 0:
            return np.empty((0, self.n_outputs or 0), dtype=np.float32)
        chunks = [
            self.session.run([OUTPUT_NAME], {k: a[start : start + batch_size] for k, a in arrays.items()})[0]
            for start in range(0, n, batch_size)
        ]
        return np.concatenate(chunks, axis=0).astype(np.float32, copy=False)


def check_onnx_parity(
    model: nn.Module,
    inputs: Mapping[str, ArrayLike],
    path: Path | str,
    rtol: float = PARITY_RTOL,
    atol: float = PARITY_ATOL,
) -> float:
    """Max abs difference between ``model`` (eval, CPU, float32) and the ONNX file ``path`` on ``inputs``.

    The ONNX side runs on the CPU provider.  Raises
    :class:`~hepchain.errors.HepchainError` (one line, naming the model, the
    file and the difference) when any element has
    ``|onnx - torch| > atol + rtol * |torch|`` or a non-finite mismatch, or
    when the shapes differ.  Elements that are NaN (or the same infinity) on
    both sides count as equal.
    """
    names = input_names_of(model)
    label = f"{type(model).__name__} ({path})"
    tensors = _ordered(names, inputs, f"ONNX parity check of {label}")
    if tensors[0].shape[0] == 0:
        raise HepchainError(f"ONNX parity check of {label}: needs at least one row")
    with torch.no_grad():
        expected = _eval_copy(model)(*tensors).numpy()
    got = OnnxModel(path, cpu_only=True).predict(dict(zip(names, tensors, strict=True)))
    if got.shape != expected.shape:
        raise HepchainError(f"ONNX parity check of {label}: output shape {got.shape}, torch gives {expected.shape}")
    same = (got == expected) | (np.isnan(got) & np.isnan(expected))
    delta = np.where(same, 0.0, np.abs(got.astype(np.float64) - expected.astype(np.float64)))
    diff = float(np.max(delta, initial=0.0))
    close = np.isclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
    if not bool(np.all(close)):
        raise HepchainError(
            f"ONNX parity check of {label} failed: max abs diff {diff:.3g} "
            f"(tolerance atol {atol:g} + rtol {rtol:g} x |torch|)"
        )
    return diff
