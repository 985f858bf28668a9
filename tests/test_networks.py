"""Tests of the study networks (hepchain.ml.networks) and their ONNX export (hepchain.ml.onnx_export)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from hepchain.errors import ConfigError, HepchainError, InputFileError
from hepchain.features.ditau import DITAU_SPEC
from hepchain.features.electrons import ELECTRONS_SPEC
from hepchain.features.jets import JETS_SPEC
from hepchain.features.recoil import RECOIL_SPEC
from hepchain.features.spec import FeatureSpec
from hepchain.features.vh import VH_SPEC
from hepchain.ml.networks import (
    MLP,
    STUDY_NETWORKS,
    VH_HIDDEN,
    DeepSets,
    FiLMCNN,
    GaussianHead,
    MLPClassifier,
    build_network,
    build_study_network,
    random_inputs,
)
from hepchain.ml.onnx_export import (
    OUTPUT_NAME,
    PARITY_ATOL,
    PARITY_RTOL,
    OnnxModel,
    check_onnx_parity,
    export_network,
)

#: study -> (spec, n_outputs, expected class, expected input names)
STUDIES: dict[str, tuple[FeatureSpec, int, type[nn.Module], tuple[str, ...]]] = {
    "recoil": (RECOIL_SPEC, 2, MLP, ("event",)),
    "ditau": (DITAU_SPEC, 1, MLP, ("event",)),
    "jets": (JETS_SPEC, 2, DeepSets, ("event", "constituents", "constituents_mask")),
    "electrons": (ELECTRONS_SPEC, 1, FiLMCNN, ("event", "cells", "tracks", "tracks_mask")),
    "vh": (VH_SPEC, 6, MLP, ("event",)),
}
#: networks with a padded set: study -> set name
SET_STUDIES = {"jets": "constituents", "electrons": "tracks"}


def build(study: str, seed: int = 0, **overrides: object) -> nn.Module:
    spec, n_outputs, _, _ = STUDIES[study]
    torch.manual_seed(seed)
    return build_study_network(study, spec, n_outputs, **overrides)


def inputs_for(study: str, model: nn.Module, n: int = 16, seed: int = 1) -> dict[str, Tensor]:
    return random_inputs(STUDIES[study][0], model.input_names, n, seed=seed)


def run(model: nn.Module, inputs: dict[str, Tensor]) -> Tensor:
    return model(*(inputs[name] for name in model.input_names))


def with_mixed_masks(inputs: dict[str, Tensor], set_name: str) -> dict[str, Tensor]:
    """Rows with K, 1, 0 (empty) and some real objects, so that every case is present."""
    out = dict(inputs)
    mask = out[f"{set_name}_mask"].clone()
    mask[0] = True
    mask[1] = False
    mask[1, 0] = True
    mask[2] = False
    out[f"{set_name}_mask"] = mask
    return out


def settle_batch_norm(model: nn.Module, inputs: dict[str, Tensor]) -> None:
    """A few train-mode passes so that batch-norm running statistics are not the initial (0, 1)."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            run(model, inputs)
    model.eval()


# --- structure and shapes ----------------------------------------------------


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_default_network_shape_and_finite(study: str) -> None:
    spec, n_outputs, cls, names = STUDIES[study]
    model = build(study)
    assert isinstance(model, cls)
    assert tuple(model.input_names) == names
    assert set(names) <= set(spec.groups) | {f"{g}_mask" for g in spec.groups}
    inputs = inputs_for(study, model, n=24)
    if study in SET_STUDIES:
        inputs = with_mixed_masks(inputs, SET_STUDIES[study])
    for train in (True, False):
        model.train(train)
        out = run(model, inputs)
        assert out.shape == (24, n_outputs)
        assert out.dtype == torch.float32
        assert torch.isfinite(out).all()


def test_study_networks_follow_the_seeds() -> None:
    assert set(STUDY_NETWORKS) == set(STUDIES)
    recoil = build("recoil")
    assert [m.out_features for m in recoil.modules() if isinstance(m, nn.Linear)] == [256, 256, 256, 2]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in recoil.modules()) == 3
    ditau = build("ditau")
    assert [m.out_features for m in ditau.modules() if isinstance(m, nn.Linear)] == [1000, 1000, 1000, 1]
    assert sum(isinstance(m, nn.Softplus) for m in ditau.modules()) == 3
    # the VH options give the layers (and parameter count) of MLPClassifier
    vh = build("vh")
    reference = MLPClassifier(len(VH_SPEC), VH_HIDDEN, n_classes=6)
    assert sum(p.numel() for p in vh.parameters()) == sum(p.numel() for p in reference.parameters())
    assert [type(m) for m in vh.layers] == [type(m) for m in reference.layers]
    assert MLPClassifier.input_names == ("event",)


def test_film_cnn_layers_follow_the_cell_layout() -> None:
    model = build("electrons")
    assert isinstance(model, FiLMCNN)
    assert model.layer_shapes == ((7, 3), (56, 3), (7, 11), (4, 11))
    assert model.n_cells == 310
    assert len(model.convs) == 4


def test_film_cnn_splits_cells_layer_major_eta_then_phi() -> None:
    """A single hot cell of the middle layer (cell 189 + 3 * 11 + 5) reaches the middle-layer branch only, at (3, 5)."""
    model = build("electrons").eval()
    seen: dict[int, Tensor] = {}
    hooks = [
        branch[0].register_forward_hook(lambda _m, args, _out, i=i: seen.__setitem__(i, args[0]))
        for i, branch in enumerate(model.convs)
    ]
    inputs = inputs_for("electrons", model, n=2)
    inputs["cells"] = torch.zeros_like(inputs["cells"])
    inputs["cells"][:, 189 + 3 * 11 + 5, 0] = 1.0
    with torch.no_grad():
        run(model, inputs)
    for hook in hooks:
        hook.remove()
    for i in (0, 1, 3):
        assert not seen[i].any()
    hot = seen[2][:, 0].nonzero().tolist()
    assert hot == [[0, 3, 5], [1, 3, 5]]


# --- masked sets -------------------------------------------------------------


@pytest.mark.parametrize("study", sorted(SET_STUDIES))
@pytest.mark.parametrize("padding", ["large", "nan"])
def test_padded_objects_do_not_contribute(study: str, padding: str) -> None:
    set_name = SET_STUDIES[study]
    model = build(study)
    inputs = with_mixed_masks(inputs_for(study, model, n=16), set_name)
    settle_batch_norm(model, inputs)
    changed = dict(inputs)
    hidden = ~inputs[f"{set_name}_mask"]
    noise = (
        torch.randn_like(inputs[set_name]) * 1e3 if padding == "large" else torch.full_like(inputs[set_name], np.nan)
    )
    changed[set_name] = torch.where(hidden[..., None], noise, inputs[set_name])
    with torch.no_grad():
        before = run(model, inputs)
        after = run(model, changed)
    assert torch.isfinite(after).all()
    assert torch.equal(before, after)
    # in training mode too (batch statistics never see the padding)
    model.train()
    torch.manual_seed(3)
    before = run(model, inputs)
    torch.manual_seed(3)
    after = run(model, changed)
    assert torch.equal(before, after)


@pytest.mark.parametrize("study", sorted(SET_STUDIES))
def test_empty_set_gives_finite_output(study: str) -> None:
    set_name = SET_STUDIES[study]
    model = build(study).eval()
    inputs = inputs_for(study, model, n=8)
    inputs[f"{set_name}_mask"] = torch.zeros_like(inputs[f"{set_name}_mask"])
    with torch.no_grad():
        out = run(model, inputs)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("study", sorted(SET_STUDIES))
def test_set_branch_is_permutation_invariant(study: str) -> None:
    set_name = SET_STUDIES[study]
    model = build(study).eval()
    inputs = with_mixed_masks(inputs_for(study, model, n=16), set_name)
    k = inputs[set_name].shape[1]
    generator = torch.Generator().manual_seed(5)
    # a different permutation of the K slots per row (real and padded objects move together)
    order = torch.stack([torch.randperm(k, generator=generator) for _ in range(16)])
    permuted = dict(inputs)
    permuted[set_name] = torch.gather(inputs[set_name], 1, order[..., None].expand_as(inputs[set_name]))
    permuted[f"{set_name}_mask"] = torch.gather(inputs[f"{set_name}_mask"], 1, order)
    assert not torch.equal(permuted[set_name], inputs[set_name])
    with torch.no_grad():
        torch.testing.assert_close(run(model, permuted), run(model, inputs), rtol=1e-5, atol=1e-5)


def test_deepsets_mean_pooling_and_set_choice() -> None:
    model = build_network("deepsets", RECOIL_SPEC, 2, phi=(16, 16), rho=(8,), pooling="mean")
    assert model.input_names == ("event", "pfos", "pfos_mask")
    inputs = with_mixed_masks(random_inputs(RECOIL_SPEC, model.input_names, 8), "pfos")
    model.eval()
    with torch.no_grad():
        out = run(model, inputs)
    assert out.shape == (8, 2)
    assert torch.isfinite(out).all()


# --- Gaussian head -----------------------------------------------------------


def test_gaussian_head_sigma_positive() -> None:
    model = build("jets")
    inputs = with_mixed_masks(inputs_for("jets", model, n=32), "constituents")
    out = run(model.eval(), inputs)
    assert (out[:, 1] > 0).all()
    head = GaussianHead(min_sigma=1e-3)
    raw = torch.tensor([[0.5, -1e4], [-2.0, 0.0], [3.0, 1e4]])
    got = head(raw)
    torch.testing.assert_close(got[:, 0], raw[:, 0])
    assert (got[:, 1] >= 1e-3).all()
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got[1, 1], torch.log(torch.tensor(2.0)) + 1e-3)


# --- training ----------------------------------------------------------------


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_gradient_reaches_every_parameter(study: str) -> None:
    model = build(study).train()
    inputs = inputs_for(study, model, n=16)
    if study in SET_STUDIES:
        inputs = with_mixed_masks(inputs, SET_STUDIES[study])
    out = run(model, inputs)
    nn.functional.mse_loss(out, torch.randn_like(out)).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_one_optimizer_step_reduces_the_mse(study: str) -> None:
    model = build(study).train()
    inputs = inputs_for(study, model, n=32)
    if study in SET_STUDIES:
        inputs = with_mixed_masks(inputs, SET_STUDIES[study])
    target = torch.randn(32, STUDIES[study][1], generator=torch.Generator().manual_seed(9))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

    def loss() -> Tensor:
        torch.manual_seed(11)  # the same Gaussian-noise draws in both passes (VH)
        return nn.functional.mse_loss(run(model, inputs), target)

    before = loss()
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = loss()
    assert after.item() < before.item()


# --- FiLM --------------------------------------------------------------------


def test_film_conditioning_changes_the_output() -> None:
    model = build("electrons")
    inputs = inputs_for("electrons", model, n=16)
    settle_batch_norm(model, inputs)
    changed = dict(inputs)
    changed["event"] = inputs["event"] + torch.randn_like(inputs["event"])
    with torch.no_grad():
        out = run(model, inputs)
        assert not torch.allclose(run(model, changed), out)
        # the images matter too
        other_cells = dict(inputs, cells=inputs["cells"] * 2.0)
        assert not torch.allclose(run(model, other_cells), out)
        # the scalars enter only through FiLM ("FiLM: scalar - top: track"): a null FiLM generator ignores them
        last = model.film[-1]
        assert isinstance(last, nn.Linear)
        last.weight.zero_()
        last.bias.zero_()
        torch.testing.assert_close(run(model, changed), run(model, inputs), rtol=0, atol=0)


# --- configuration errors ----------------------------------------------------


def test_unknown_kind_raises_config_error() -> None:
    with pytest.raises(
        ConfigError, match=r"network kind 'transformer' is unknown \(allowed: deepsets, film_cnn, mlp\)"
    ):
        build_network("transformer", VH_SPEC, 2)
    with pytest.raises(ConfigError, match="study 'higgs' has no default network"):
        build_study_network("higgs", VH_SPEC, 2)
    with pytest.raises(ConfigError, match="n_outputs must be an integer >= 1, got 0"):
        build_network("mlp", VH_SPEC, 0)


@pytest.mark.parametrize(
    ("kind", "spec", "options", "message"),
    [
        ("mlp", VH_SPEC, {"hiden": (8,)}, r"option 'hiden' is unknown for network kind 'mlp' \(allowed: activation, "),
        ("mlp", VH_SPEC, {"activation": "tanh"}, r"activation 'tanh' is unknown \(allowed: elu, relu, softplus\)"),
        ("mlp", VH_SPEC, {"hidden": (8, 0)}, "option 'hidden' must hold integers >= 1"),
        ("mlp", VH_SPEC, {"dropout": 1.5}, r"option 'dropout' must be a number in \[0, 1\)"),
        ("mlp", VH_SPEC, {"batch_norm": "yes"}, "option 'batch_norm' must be true or false"),
        ("mlp", VH_SPEC, {"noise_std": -0.1}, "option 'noise_std' must be a number >= 0"),
        ("mlp", VH_SPEC, {"gaussian_head": True}, "gaussian_head needs n_outputs = 2"),
        ("deepsets", JETS_SPEC, {"pooling": "max"}, r"option 'pooling' = 'max' is unknown \(allowed: mean, sum\)"),
        ("deepsets", JETS_SPEC, {"phi": ()}, "option 'phi' needs at least one layer size"),
        (
            "deepsets",
            JETS_SPEC,
            {"set_group": "tracks"},
            r"'tracks' is not a set of study 'jets' \(allowed: constituents\)",
        ),
        (
            "deepsets",
            DITAU_SPEC,
            {},
            r"option 'set_group' must name one of the sets of study 'ditau' \(allowed: none\)",
        ),
        (
            "film_cnn",
            JETS_SPEC,
            {},
            r"option 'image_group' = 'cells' is not an image of study 'jets' \(allowed: none\)",
        ),
        ("film_cnn", ELECTRONS_SPEC, {"global_pool": "sum"}, r"'global_pool' = 'sum' is unknown \(allowed: max, "),
        ("film_cnn", ELECTRONS_SPEC, {"kernel": 5}, "option 'kernel' is unknown for network kind 'film_cnn'"),
    ],
)
def test_bad_option_raises_config_error(kind: str, spec: FeatureSpec, options: dict[str, object], message: str) -> None:
    n_outputs = 2 if kind == "deepsets" else 1
    with pytest.raises(ConfigError, match=message):
        build_network(kind, spec, n_outputs, **options)


def test_study_defaults_are_not_mutated_by_overrides() -> None:
    model = build("recoil", hidden=(8,), batch_norm=False)
    assert [m.out_features for m in model.modules() if isinstance(m, nn.Linear)] == [8, 2]
    assert STUDY_NETWORKS["recoil"]["hidden"] == (256, 256, 256)


# --- ONNX --------------------------------------------------------------------


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_onnx_parity(study: str, tmp_path: Path) -> None:
    model = build(study)
    inputs = inputs_for(study, model, n=48, seed=2)
    if study in SET_STUDIES:
        inputs = with_mixed_masks(inputs, SET_STUDIES[study])
    settle_batch_norm(model, inputs)
    model.train()  # export and parity use an eval copy; the caller's mode is kept
    path = export_network(model, inputs_for(study, model, n=3, seed=4), tmp_path / "net" / f"{study}.onnx")
    assert model.training
    assert sorted(p.name for p in path.parent.iterdir()) == [f"{study}.onnx"]
    onnx_model = OnnxModel(path)
    assert onnx_model.input_names == tuple(model.input_names)
    assert onnx_model.n_outputs == STUDIES[study][1]
    diff = check_onnx_parity(model, inputs, path, rtol=PARITY_RTOL, atol=PARITY_ATOL)
    assert diff <= PARITY_ATOL
    # dynamic batch axis: other sizes and batching give the same rows
    numpy_inputs = {k: v.numpy() for k, v in inputs.items()}
    whole = onnx_model.predict(numpy_inputs)
    np.testing.assert_allclose(onnx_model.predict(numpy_inputs, batch_size=7), whole, rtol=1e-6, atol=1e-6)
    one_row = onnx_model.predict({k: v[:1] for k, v in numpy_inputs.items()})
    np.testing.assert_allclose(one_row, whole[:1], rtol=1e-5, atol=1e-5)
    assert onnx_model.predict({k: v[:0] for k, v in numpy_inputs.items()}).shape == (0, STUDIES[study][1])


def test_onnx_parity_failure_names_the_model(tmp_path: Path) -> None:
    model = build("vh", hidden=(8,))
    inputs = inputs_for("vh", model, n=8)
    path = export_network(model, inputs, tmp_path / "vh.onnx")
    with torch.no_grad():
        model.layers[-1].bias += 0.5
    with pytest.raises(HepchainError, match=r"ONNX parity check of MLP \(.*vh.onnx\) failed: max abs diff 0.5"):
        check_onnx_parity(model, inputs, path, rtol=PARITY_RTOL, atol=PARITY_ATOL)


class _Broken(nn.Module):
    input_names = ("event",)

    def forward(self, event: Tensor) -> Tensor:
        raise RuntimeError("cannot trace this")


def test_export_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old model")
    with pytest.raises(RuntimeError, match="cannot trace this"):
        export_network(_Broken(), {"event": torch.zeros(2, 3)}, path)
    assert path.read_bytes() == b"old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_export_and_predict_input_errors(tmp_path: Path) -> None:
    model = build("jets", phi=(8,), rho=(8,))
    inputs = inputs_for("jets", model, n=4)
    with pytest.raises(HepchainError, match="input 'constituents_mask' is missing"):
        export_network(model, {k: v for k, v in inputs.items() if k != "constituents_mask"}, tmp_path / "x.onnx")
    assert not list(tmp_path.iterdir())
    path = export_network(model, inputs, tmp_path / "jets.onnx")
    onnx_model = OnnxModel(path)
    with pytest.raises(HepchainError, match="input 'event' is missing"):
        onnx_model.predict({k: v.numpy() for k, v in inputs.items() if k != "event"})
    with pytest.raises(HepchainError, match="must share their first"):
        onnx_model.predict({**{k: v.numpy() for k, v in inputs.items()}, "event": inputs["event"][:2].numpy()})
    with pytest.raises(InputFileError, match="ONNX model file not found"):
        OnnxModel(tmp_path / "missing.onnx")
    session_outputs = [o.name for o in onnx_model.session.get_outputs()]
    assert session_outputs == [OUTPUT_NAME]
    assert [i.type for i in onnx_model.session.get_inputs()] == ["tensor(float)", "tensor(float)", "tensor(bool)"]
