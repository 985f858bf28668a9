"""Training throughput of the engine against a DataLoader pipeline and a hand-written loop, in one process.

The recoil network of :data:`hepchain.ml.networks.STUDY_NETWORKS` (MLP 3 x 256
with batch norm, seed 000) is trained on the training rows of a recoil
feature table (``--table``; without it, random rows with the shapes of the
recoil spec's event features) three ways, with the same initial weights,
Adam, batch size and number of epochs:

(a) the engine: :class:`~hepchain.ml.engine.DeviceDataModule` (whole table on
    the device, ``index_select`` batches) and
    :class:`~hepchain.ml.engine.StudyModule` under the engine's Trainer;
(b) plain Lightning with a ``torch.utils.data.DataLoader`` over a
    ``TensorDataset`` of CPU tensors, 4 workers, default collation;
(c) a hand-written PyTorch loop over tensors already on the device
    (``randperm`` + ``index_select``, Adam, no Lightning).

Throughput is training rows per second over the training batches of each
epoch (validation, checkpointing and start-up excluded; for (b) the worker
start-up of every epoch is included, as it is a cost of that pipeline); the
loss is the mean squared error in all three ((a) through the engine's
``recoil_bias_penalty`` with alpha 0 and unit weights, the same value).  Then
the engine's model is exported to ONNX and ONNX Runtime inference is timed
at batch 65536 (events/s).
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import HepchainError

#: Batch size of the ONNX Runtime inference timing.
ONNX_BATCH = 65536
#: Most rows used for the inference timing.
ONNX_MAX_ROWS = 1_000_000


def _recoil_tensors(rows: int, table: Path | None, seed: int) -> Any:
    from ..ml.study_data import load_study_tensors, study_tensors_from_columns, synthetic_feature_table

    if table is not None:
        return load_study_tensors("recoil", table, input_names=("event",), max_rows=rows)
    columns = synthetic_feature_table("recoil", rows, seed=seed, groups=["event"])
    return study_tensors_from_columns("recoil", columns, input_names=("event",), source="random recoil rows")


def run(
    rows: int = 1_500_000,
    epochs: int = 2,
    batch: int = 1500,
    device: str = "auto",
    *,
    table: Path | None = None,
    workers: int = 4,
    seed: int = 0,
) -> dict[str, Any]:
    """Train (a), (b), (c) and time ONNX inference; returns the numbers that :func:`main` prints."""
    import lightning
    import numpy as np
    import torch
    import torch.nn.functional as F
    from lightning.pytorch import LightningModule, Trainer
    from torch.utils.data import DataLoader, TensorDataset

    from ..ml.engine import ThroughputCallback, build_study, make_trainer, resolve_accelerator, resolve_config
    from ..ml.networks import describe
    from ..ml.onnx_export import OnnxModel, export_network

    accelerator = resolve_accelerator(device)
    torch_device = torch.device("cuda" if accelerator == "gpu" else "cpu")
    tensors = _recoil_tensors(rows, table, seed)
    cfg = resolve_config(
        "recoil",
        {
            "batch_size": batch,
            "max_epochs": epochs,
            "patience": epochs,
            "accelerator": accelerator,
            "progress_bar": False,
            "seed": seed,
            "n_folds": max(3, int(tensors.fold.max()) + 1),
        },
    )
    module, data, splits = build_study("recoil", tensors, cfg)
    initial = copy.deepcopy(module.inference_model())
    train_rows = torch.from_numpy(splits["train"])
    x_train = tensors.inputs["event"].index_select(0, train_rows)
    y_train = tensors.target.index_select(0, train_rows)
    n_train = int(x_train.shape[0])
    result: dict[str, Any] = {
        "rows": tensors.n_rows,
        "train_rows": n_train,
        "epochs": epochs,
        "batch": batch,
        "device": str(torch_device),
        "network": dict(describe(module.network)),
        "source": tensors.source,
        "threads": torch.get_num_threads(),
    }

    with tempfile.TemporaryDirectory(prefix="hepchain-bench-train-") as tmp:
        # (a) the engine
        meter = ThroughputCallback()
        trainer = make_trainer(cfg, Path(tmp) / "a", callbacks=[meter], enable_model_summary=False)
        trainer.fit(module, datamodule=data)
        result["engine"] = meter.samples_per_s

        # (b) plain Lightning with a DataLoader
        class PlainModule(LightningModule):
            def __init__(self, model: torch.nn.Module, lr: float) -> None:
                super().__init__()
                self.model, self.lr = model, lr

            def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
                x, y = batch
                return F.mse_loss(self.model(x), y)

            def configure_optimizers(self) -> torch.optim.Optimizer:
                return torch.optim.Adam(self.parameters(), lr=self.lr)

        loader = DataLoader(
            TensorDataset(x_train, y_train),
            batch_size=batch,
            shuffle=True,
            num_workers=workers,
            drop_last=n_train % batch == 1,
        )
        lightning.seed_everything(seed, workers=True, verbose=False)
        meter_b = ThroughputCallback()
        plain = Trainer(
            accelerator=accelerator,
            devices=1,
            max_epochs=epochs,
            deterministic=True if accelerator == "cpu" else "warn",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[meter_b],
        )
        plain.fit(PlainModule(copy.deepcopy(initial), cfg["lr"]), train_dataloaders=loader)
        result["dataloader"] = meter_b.samples_per_s

        # (c) hand-written loop over device tensors
        model = copy.deepcopy(initial).to(torch_device).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
        x_dev, y_dev = x_train.to(torch_device), y_train.to(torch_device)
        generator = torch.Generator(device=torch_device).manual_seed(seed)
        stops = [s for s in range(batch, n_train + batch, batch)]
        if n_train % batch == 1:
            stops = stops[:-1]
        seconds = 0.0
        for _ in range(epochs):
            start = time.perf_counter()
            order = torch.randperm(n_train, generator=generator, device=torch_device)
            for stop in stops:
                index = order[stop - batch : min(stop, n_train)]
                loss = F.mse_loss(model(x_dev.index_select(0, index)), y_dev.index_select(0, index))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if torch_device.type == "cuda":
                torch.cuda.synchronize(torch_device)
            seconds += time.perf_counter() - start
        result["loop"] = sum(min(s, n_train) - (s - batch) for s in stops) * epochs / seconds

        # ONNX Runtime inference of the engine's model
        inference = module.inference_model().cpu().eval()
        sample = {"event": tensors.inputs["event"][: min(tensors.n_rows, ONNX_MAX_ROWS)].numpy()}
        path = export_network(inference, {"event": sample["event"][:4]}, Path(tmp) / "model.onnx")
        onnx = OnnxModel(path, cpu_only=accelerator == "cpu")
        onnx.predict({"event": sample["event"][:ONNX_BATCH]}, batch_size=ONNX_BATCH)
        start = time.perf_counter()
        onnx.predict(sample, batch_size=ONNX_BATCH)
        result["onnx_events_per_s"] = len(sample["event"]) / (time.perf_counter() - start)
        result["onnx_provider"] = onnx.session.get_providers()[0]
    result["engine_over_dataloader"] = result["engine"] / result["dataloader"]
    result["engine_over_loop"] = result["engine"] / result["loop"]
    result["finite"] = bool(np.isfinite([result["engine"], result["dataloader"], result["loop"]]).all())
    return result


def main(argv: list[str] | None = None) -> None:
    """``python -m hepchain.bench train [--rows N] [--epochs E] [--batch B] [--device auto|cpu|gpu] [--table T]``."""
    p = argparse.ArgumentParser(prog="python -m hepchain.bench train", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_500_000, help="rows of the table (random recoil rows without --table)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch", type=int, default=1500)
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    p.add_argument("--table", type=Path, default=None, help="a recoil feature table (default: random rows)")
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers of (b)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    ns = p.parse_args(argv)
    if ns.threads is not None:
        import torch

        torch.set_num_threads(ns.threads)
    try:
        r = run(ns.rows, ns.epochs, ns.batch, ns.device, table=ns.table, workers=ns.workers, seed=ns.seed)
    except HepchainError as exc:
        sys.exit(f"hepchain.bench train: error: {exc}")
    net = r["network"]
    print(
        f"recoil {net['class']} ({net['n_parameters']} parameters) on {r['train_rows']} training rows of "
        f"{r['rows']} ({r['source']}), batch {r['batch']}, {r['epochs']} epochs, device {r['device']}, "
        f"{r['threads']} torch threads"
    )
    print(f"(a) engine (device-resident batches, Lightning):          {r['engine']:12.0f} samples/s")
    print(f"(b) Lightning + DataLoader(TensorDataset, {ns.workers} workers):    {r['dataloader']:12.0f} samples/s")
    print(f"(c) hand-written loop on device tensors (no Lightning):   {r['loop']:12.0f} samples/s")
    print(f"(a)/(b) = {r['engine_over_dataloader']:.2f}   (a)/(c) = {r['engine_over_loop']:.2f}")
    print(f"ONNX Runtime inference ({r['onnx_provider']}, batch {ONNX_BATCH}): {r['onnx_events_per_s']:.0f} events/s")
