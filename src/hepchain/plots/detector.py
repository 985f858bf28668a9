"""Figures of the detector validation, drawn from the ``validation.json`` content (each as PDF and PNG).

Every figure is drawn from the result dictionary of
:func:`hepchain.detector.validation.run_validation` only (binned curves,
histograms and fitted parameters), so it can be redrawn from the JSON alone.
A figure whose inputs were skipped is not drawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .style import save, setup

TUNE_STYLE = {"nominal": {"color": "#1f77b4", "marker": "o"}, "pseudodata": {"color": "#d62728", "marker": "s"}}
OBJECT_LABEL = {"electrons": "electrons (Z->ee)", "muons": "muons", "jets": "jets", "taus": "hadronic taus (Z->tautau)"}


def _arr(values: Any) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _ok(node: Any) -> bool:
    return isinstance(node, Mapping) and "skipped" not in node


def _band(ax: Any, check: Any, label: str | None = None) -> None:
    if _ok(check) and "expected" in check:
        lo, hi = check["expected"]
        ax.axhspan(lo, hi, color="0.85", alpha=0.6, lw=0, label=label)


def response_resolution(curves: Mapping[str, Any], key: str, title: str, stem: Path, xlog: bool = False,
                        res_band: Mapping[str, Any] | None = None) -> list[Path]:
    """Response (core mean) and relative resolution (core sigma/mu) vs x, one marker set per tune."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(6.5, 7), sharex=True, gridspec_kw={"height_ratios": [1, 1.3]})
    drawn = False
    xlabel = ""
    for tune, c in curves.items():
        if not _ok(c) or key not in c:
            continue
        cur = c[key]
        edges = np.asarray(cur["edges"], float)
        x = _arr(cur["x_mean"])
        x = np.where(np.isfinite(x), x, 0.5 * (edges[1:] + edges[:-1]))
        xerr = np.abs(np.vstack([x - edges[:-1], edges[1:] - x]))
        st = TUNE_STYLE.get(tune, {"color": "k", "marker": "^"})
        label = f"{tune} ({'+'.join(c['roles'])})" if c.get("roles") else tune
        ax1.errorbar(x, _arr(cur["response"]), yerr=_arr(cur["response_err"]), xerr=xerr, ls="none", label=label, **st)
        ax2.errorbar(x, _arr(cur["resolution"]), yerr=_arr(cur["resolution_err"]), xerr=xerr, ls="none", label=f"{tune}: core fit", **st)
        ax2.plot(x, _arr(cur["eiqr"]), ls=":", color=st["color"], label=f"{tune}: eIQR")
        xlabel = cur["x"]
        drawn = True
    if not drawn:
        plt.close(fig)
        return []
    if res_band is not None:
        _band(ax2, res_band, "expected")
    ax1.axhline(1.0, color="0.5", lw=0.8)
    ax1.set_ylabel("response (core mean)")
    ax2.set_ylabel("resolution (core $\\sigma/\\mu$)")
    ax2.set_xlabel(xlabel)
    if xlog:
        ax2.set_xscale("log")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    ax1.set_title(title, fontsize=11)
    return save(fig, stem)


def jer_vs_pt(jets: Mapping[str, Any], stem: Path) -> list[Path]:
    """Jet energy resolution vs pT_gen (|eta| < 1.3) with the ATLAS and CMS reference points and the check bands."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5))
    drawn = False
    for tune, c in jets.get("curves", {}).items():
        if not _ok(c):
            continue
        cur = c["vs_pt"]
        edges = np.asarray(cur["edges"], float)
        x = _arr(cur["x_mean"])
        x = np.where(np.isfinite(x), x, 0.5 * (edges[1:] + edges[:-1]))
        st = TUNE_STYLE.get(tune, {"color": "k", "marker": "^"})
        ax.errorbar(x, _arr(cur["resolution"]), yerr=_arr(cur["resolution_err"]), xerr=np.abs(np.vstack([x - edges[:-1], edges[1:] - x])),
                    ls="none", label=f"hepchain {tune}", **st)
        drawn = True
    if not drawn:
        plt.close(fig)
        return []
    for name, (lo, hi) in (("jer_20_30", (20, 30)), ("jer_250_400", (250, 400)), ("jer_800_1300", (800, 1300))):
        chk = jets.get("checks", {}).get(name)
        if _ok(chk):
            ax.fill_between([lo, hi], [chk["expected"][0]] * 2, [chk["expected"][1]] * 2, color="0.8", alpha=0.6, lw=0)
    markers = {"ATLAS": ("D", "#2ca02c"), "CMS": ("*", "#9467bd")}
    seen = set()
    for pt, jer, err, label in jets.get("reference_points", []):
        mk, col = markers["ATLAS" if label.startswith("ATLAS") else "CMS"]
        ax.errorbar([pt], [jer], yerr=[err], marker=mk, color=col, ms=9, ls="none", label=None if label in seen else label)
        seen.add(label)
    ax.set_xscale("log")
    ax.set_xlabel("$p_T^{gen}$ [GeV], |$\\eta$| < 1.3")
    ax.set_ylabel("JER: core $\\sigma/\\mu$ of $p_T^{reco}/p_T^{gen}$")
    ax.set_ylim(0, 0.35)
    ax.legend(fontsize=8)
    ax.set_title("Jet energy resolution vs published (grey: expected bands)", fontsize=11)
    return save(fig, stem)


def _gauss_on_hist(ax: Any, hist: Mapping[str, Any], mu: float, sigma: float, color: str, label: str) -> None:
    """Gaussian scaled to the histogram entries inside mu +- 2 sigma (the core that was fitted)."""
    from scipy.stats import norm

    edges = np.asarray(hist["edges"], float)
    counts = np.asarray(hist["counts"], float)
    centres = 0.5 * (edges[1:] + edges[:-1])
    width = edges[1] - edges[0]
    core = np.abs(centres - mu) < 2 * sigma
    frac = norm.cdf(2) - norm.cdf(-2)
    n_total = counts[core].sum() / frac if core.any() else counts.sum()
    xs = np.linspace(edges[0], edges[-1], 400)
    ax.plot(xs, n_total * width * norm.pdf(xs, mu, sigma), color=color, label=label)


def dijet_asymmetry(jets: Mapping[str, Any], stem: Path) -> list[Path]:
    """Seed-002 dijet asymmetry with its core Gaussian fit, per tune."""
    import matplotlib.pyplot as plt

    asym = {t: a for t, a in jets.get("asymmetry", {}).items() if _ok(a)}
    if not asym:
        return []
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for tune, a in asym.items():
        st = TUNE_STYLE.get(tune, {"color": "k", "marker": "^"})
        edges = np.asarray(a["hist"]["edges"], float)
        ax.stairs(a["hist"]["counts"], edges, color=st["color"], label=f"{tune} ({a['n']} events)")
        _gauss_on_hist(ax, a["hist"], a["mu"], a["sigma"], st["color"], f"{tune}: $\\sigma_A$ = {a['sigma']:.3f} $\\pm$ {a['sigma_err']:.3f}")
    ax.set_xlabel("$A = (p_T^{ref} - p_T^{probe})/p_T^{avg}$")
    ax.set_ylabel("events / bin")
    ax.set_title("Dijet asymmetry, 1.1 $\\leq p_T^{avg}$ < 2.6 TeV, 0.2 < |$\\eta_{probe}$| < 0.7 (seed: $\\sigma$ = 0.099)", fontsize=10)
    ax.legend(fontsize=8)
    return save(fig, stem)


def zee_peak(electrons: Mapping[str, Any], stem: Path) -> list[Path]:
    """Di-electron mass with the BW (x) CB fit, nominal and pseudo-data side by side."""
    import matplotlib.pyplot as plt

    peaks = {t: z for t, z in electrons.get("zpeak", {}).items() if _ok(z) and z.get("status") == "ok"}
    if not peaks:
        return []
    fig, axes = plt.subplots(1, len(peaks), figsize=(5.5 * len(peaks), 4.8), squeeze=False)
    for ax, (tune, z) in zip(axes[0], peaks.items(), strict=True):
        st = TUNE_STYLE.get(tune, {"color": "k", "marker": "^"})
        edges = np.asarray(z["hist"]["edges"], float)
        counts = np.asarray(z["hist"]["counts"], float)
        centres = 0.5 * (edges[1:] + edges[:-1])
        ax.errorbar(centres, counts, yerr=np.sqrt(np.maximum(counts, 1)), ls="none", marker="o", ms=3, color="k", label=f"{tune} ({z['n']} pairs)")
        width = edges[1] - edges[0]
        ax.plot(z["curve"]["x"], np.asarray(z["curve"]["y_per_gev"]) * width, color=st["color"],
                label=f"BW$\\otimes$CB: $\\sigma_{{CB}}$ = {z['sigma_cb']:.2f} $\\pm$ {z['sigma_cb_err']:.2f} GeV\npeak {z['peak']:.2f} GeV")
        ax.set_xlabel("$m_{ee}$ [GeV]")
        ax.set_ylabel("pairs / bin")
        ax.set_title(tune, fontsize=11)
        ax.legend(fontsize=8)
    return save(fig, stem)


def energy_resolution(electrons: Mapping[str, Any], stem: Path) -> list[Path]:
    """Electron sigma(E)/E vs E_gen with the a/sqrt(E) (+) b (+) c/E fit."""
    import matplotlib.pyplot as plt

    cur = electrons.get("curves", {}).get("nominal", {})
    fitp = electrons.get("energy_resolution_fit")
    if not _ok(cur) or "vs_energy" not in cur or not fitp:
        return []
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for tune, c in electrons["curves"].items():
        if not _ok(c):
            continue
        v = c["vs_energy"]
        st = TUNE_STYLE.get(tune, {"color": "k", "marker": "^"})
        ax.errorbar(_arr(v["x_mean"]), _arr(v["resolution"]), yerr=_arr(v["resolution_err"]), ls="none", label=tune, **st)
    e = np.geomspace(15, 500, 200)
    a, b, c = fitp["a"], fitp["b"], fitp["c"]
    if a is not None and b is not None and c is not None:
        ax.plot(e, np.sqrt(a * a / e + b * b + (c / e) ** 2), color=TUNE_STYLE["nominal"]["color"],
                label=f"fit: a = {a:.3f} $\\pm$ {fitp['a_err']:.3f}, b = {b:.4f}, c = {c:.2f} GeV")
    ax.plot(e, np.sqrt(0.101**2 / e + 0.0017**2), color="0.4", ls="--", label="ATLAS LAr 10.1%/sqrt(E) $\\oplus$ 0.17%")
    ax.set_xscale("log")
    ax.set_xticks([20, 50, 100, 200, 500], ["20", "50", "100", "200", "500"])
    ax.set_xlabel("$E_{gen}$ [GeV], |$\\eta$| < 1.37")
    ax.set_ylabel("$\\sigma(E)/E$ (core fit)")
    ax.legend(fontsize=8)
    return save(fig, stem)


def met_pulls(met: Mapping[str, Any], stem: Path) -> list[Path]:
    """Pulls of MET - GenMET along the covariance axes with a unit Gaussian, and chi2 with the chi2(2) density."""
    import matplotlib.pyplot as plt
    from scipy.stats import chi2, norm

    roles = [r for r, p in met.get("pulls", {}).items() if _ok(p)]
    if not roles:
        return []
    fig, axes = plt.subplots(len(roles), 2, figsize=(11, 4.2 * len(roles)), squeeze=False)
    for row, role in zip(axes, roles, strict=True):
        p = met["pulls"][role]
        ax = row[0]
        for k, col in (("major", "#1f77b4"), ("minor", "#ff7f0e")):
            edges = np.asarray(p[k]["edges"], float)
            counts = np.asarray(p[k]["counts"], float)
            ax.stairs(counts / max(counts.sum(), 1) / (edges[1] - edges[0]), edges, color=col, label=f"{k} axis (core $\\sigma$ = {p[k]['sigma']:.2f})")
        xs = np.linspace(-5, 5, 300)
        ax.plot(xs, norm.pdf(xs), color="k", ls="--", label="unit Gaussian")
        ax.set_xlabel("pull of MET - GenMET")
        ax.set_ylabel("density")
        ax.set_title(role, fontsize=11)
        ax.legend(fontsize=8)
        ax = row[1]
        edges = np.asarray(p["chi2"]["edges"], float)
        counts = np.asarray(p["chi2"]["counts"], float)
        ax.stairs(counts / max(counts.sum(), 1) / (edges[1] - edges[0]), edges, color="#2ca02c", label="$r^T V^{-1} r$")
        xs = np.linspace(0.01, 20, 300)
        ax.plot(xs, chi2.pdf(xs, 2), color="k", ls="--", label="$\\chi^2$, 2 dof")
        ax.set_yscale("log")
        ax.set_xlabel("$\\chi^2$")
        ax.legend(fontsize=8)
    return save(fig, stem)


def met_resolution(met: Mapping[str, Any], stem: Path) -> list[Path]:
    """Per-component MET resolution vs SumET with the sqrt(a^2 + b^2 SumET) fit, per role."""
    import matplotlib.pyplot as plt

    roles = {r: c for r, c in met.get("curves", {}).items() if _ok(c)}
    if not roles:
        return []
    fig, ax = plt.subplots(figsize=(6.5, 5))
    colours = {"ttbar": "#1f77b4", "wmunu": "#ff7f0e"}
    for role, c in roles.items():
        cur, f = c["resolution_vs_sumet"], c["fit"]
        x = _arr(cur["x_mean"])
        col = colours.get(role, "k")
        ax.errorbar(x, _arr(cur["resolution"]), yerr=_arr(cur["resolution_err"]), ls="none", marker="o", color=col, label=role)
        if f["a"] is None or f["b"] is None:
            continue
        xs = np.linspace(0, np.nanmax(np.asarray(cur["edges"], float)), 200)
        ax.plot(xs, np.sqrt(f["a"] ** 2 + f["b"] ** 2 * xs), color=col,
                label=f"{role}: sqrt($a^2 + b^2 \\Sigma E_T$), a = {f['a']:.1f} GeV, b = {f['b']:.2f} GeV$^{{1/2}}$")
    xmax = max(np.nanmax(np.asarray(c["resolution_vs_sumet"]["edges"], float)) for c in roles.values())
    xs = np.linspace(0, xmax, 200)
    ax.fill_between(xs, 0.4 * np.sqrt(xs), 0.8 * np.sqrt(xs), color="0.85", alpha=0.6, lw=0, label="(0.4-0.8) sqrt($\\Sigma E_T$) (CMS/ATLAS)")
    ax.set_xlabel("MET_sumEt [GeV]")
    ax.set_ylabel("core $\\sigma$(MET$_{x,y}$ - GenMET$_{x,y}$) [GeV]")
    ax.legend(fontsize=8)
    return save(fig, stem)


def tau_migration(taus: Mapping[str, Any], stem: Path) -> list[Path]:
    """Decay-mode migration matrix (row-normalised), as Fig. 1 of CMS JINST 17 (2022) P07023."""
    import matplotlib.pyplot as plt

    mig = taus.get("dm_migration")
    if not mig:
        return []
    frac = np.asarray(mig["fractions"], float)
    fig, ax = plt.subplots(figsize=(7, 5))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(frac.shape[0]):
        for j in range(frac.shape[1]):
            ax.text(j, i, f"{frac[i, j]:.2f}", ha="center", va="center", fontsize=9, color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xticks(range(frac.shape[1]), mig["reco_columns"])
    ax.set_yticks(range(frac.shape[0]), [str(r) for r in mig["gen_rows"]])
    ax.set_xlabel("reconstructed decay mode")
    ax.set_ylabel("generated decay mode")
    fig.colorbar(im, ax=ax, label="fraction of generated")
    return save(fig, stem)


def electron_images(electrons: Mapping[str, Any], stem: Path) -> list[Path]:
    """Average electron cell image per layer (4 panels)."""
    import matplotlib.pyplot as plt

    img = electrons.get("images")
    if not _ok(img) or not img.get("images"):
        return []
    layers = list(img["images"].items())
    fig, axes = plt.subplots(1, len(layers), figsize=(4.8 * len(layers), 4.2), squeeze=False, layout="constrained")
    fractions = img.get("layer_fraction", [])
    for k, (ax, (name, grid)) in enumerate(zip(axes[0], layers, strict=True)):
        a = np.asarray(grid, float)
        im = ax.imshow(a.T, origin="lower", aspect="auto", cmap="viridis")
        frac = f", {fractions[k]:.1%} of E" if k < len(fractions) else ""
        ax.set_title(f"{name}{frac}", fontsize=10)
        ax.set_xlabel("i$\\eta$")
        ax.set_ylabel("i$\\phi$")
        fig.colorbar(im, ax=ax, label="GeV per electron" if k == len(layers) - 1 else None)
    fig.suptitle(f"Average electron image ({img.get('n_electrons', 0)} electrons)", fontsize=11)
    return save(fig, stem)


def recoil(met: Mapping[str, Any], stem: Path) -> list[Path]:
    """u_par response and u_perp resolution vs truth pT(W) (W -> mu nu at low pile-up)."""
    import matplotlib.pyplot as plt

    r = met.get("recoil")
    if not r or "response" not in r:
        return []
    edges = np.asarray(r["edges"], float)
    x = _arr(r["x_mean"])
    x = np.where(np.isfinite(x), x, 0.5 * (edges[1:] + edges[:-1]))
    xerr = np.abs(np.vstack([x - edges[:-1], edges[1:] - x]))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(6.5, 7), sharex=True)
    ax1.errorbar(x, _arr(r["response"]), yerr=_arr(r["response_err"]), xerr=xerr, ls="none", marker="o", color="#1f77b4")
    ax1.axhline(1.0, color="0.5", lw=0.8)
    _band(ax1, met.get("checks", {}).get("recoil_response_ptw_20_40"), "expected (20-40 GeV)")
    ax1.set_ylabel("$\\langle u_\\parallel \\rangle / \\langle p_T^W \\rangle$")
    ax2.errorbar(x, _arr(r["sigma_uperp"]), yerr=_arr(r["sigma_uperp_err"]), xerr=xerr, ls="none", marker="o", color="#ff7f0e")
    _band(ax2, met.get("checks", {}).get("recoil_uperp_sigma_ptw_below_30"), "expected ($p_T^W$ < 30 GeV)")
    ax2.set_ylabel("$\\sigma(u_\\perp)$ [GeV]")
    ax2.set_xlabel("truth $p_T^W$ [GeV]")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    ax1.set_title("Hadronic recoil, W$\\to\\mu\\nu$ at low pile-up", fontsize=11)
    return save(fig, stem)


def draw_all(result: Mapping[str, Any], outdir: Path) -> list[Path]:
    """Every figure that the validation result can feed; returns the written paths (PDF and PNG).

    A figure that cannot be drawn from what was measured (a fit that did not
    converge, an empty histogram) is reported on stderr and left out; the
    other figures are still drawn.
    """
    import sys

    setup()
    outdir.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[str, Any]] = []
    for obj in ("electrons", "muons", "jets"):
        node = result.get(obj, {})
        curves = node.get("curves", {}) if isinstance(node, Mapping) else {}
        if not curves:
            continue
        checks = node.get("checks", {})
        band = (checks.get("resolution_barrel") or checks.get("resolution_barrel_20_100")) if obj != "jets" else None
        jobs.append((f"{obj}_vs_pt", lambda c=curves, o=obj, b=band: response_resolution(
            c, "vs_pt", f"{OBJECT_LABEL[o]}: response and resolution vs pT", outdir / f"{o}_vs_pt", xlog=o == "jets", res_band=b)))
        jobs.append((f"{obj}_vs_abseta", lambda c=curves, o=obj: response_resolution(
            c, "vs_abseta", f"{OBJECT_LABEL[o]}: response and resolution vs |eta|", outdir / f"{o}_vs_abseta")))
    taus = result.get("taus", {})
    tau_curves = taus.get("curves", {}).get("nominal", {}) if isinstance(taus, Mapping) else {}
    if tau_curves:
        per_dm = {f"DM {k[2:]}": {"vs_pt": v} for k, v in tau_curves.items()}
        jobs.append(("taus_vs_pt", lambda: _tau_vs_pt(per_dm, outdir / "taus_vs_pt")))
    jets = result.get("jets", {})
    if isinstance(jets, Mapping):
        jobs.append(("jer_vs_pt", lambda: jer_vs_pt(jets, outdir / "jer_vs_pt")))
        jobs.append(("dijet_asymmetry", lambda: dijet_asymmetry(jets, outdir / "dijet_asymmetry")))
    electrons = result.get("electrons", {})
    if isinstance(electrons, Mapping):
        jobs.append(("zee_peak", lambda: zee_peak(electrons, outdir / "zee_peak")))
        jobs.append(("electron_energy_resolution", lambda: energy_resolution(electrons, outdir / "electron_energy_resolution")))
        jobs.append(("electron_images", lambda: electron_images(electrons, outdir / "electron_images")))
    met = result.get("met", {})
    if isinstance(met, Mapping):
        jobs.append(("met_pulls", lambda: met_pulls(met, outdir / "met_pulls")))
        jobs.append(("met_resolution_vs_sumet", lambda: met_resolution(met, outdir / "met_resolution_vs_sumet")))
        jobs.append(("recoil_vs_ptw", lambda: recoil(met, outdir / "recoil_vs_ptw")))
    if isinstance(taus, Mapping):
        jobs.append(("tau_dm_migration", lambda: tau_migration(taus, outdir / "tau_dm_migration")))
    out: list[Path] = []
    for name, job in jobs:
        try:
            out += job()
        except (TypeError, ValueError, KeyError) as exc:
            import matplotlib.pyplot as plt

            plt.close("all")
            print(f"validate-detector: figure {name} not drawn ({type(exc).__name__}: {exc})", file=sys.stderr)
    return out


def _tau_vs_pt(per_dm: Mapping[str, Any], stem: Path) -> list[Path]:
    """Tau visible-pT response and resolution vs pT, one marker set per reconstructed decay mode."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(6.5, 7), sharex=True)
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
    drawn = False
    for (name, c), col in zip(per_dm.items(), colours, strict=False):
        cur = c["vs_pt"]
        edges = np.asarray(cur["edges"], float)
        x = _arr(cur["x_mean"])
        if not np.isfinite(_arr(cur["response"])).any():
            continue
        x = np.where(np.isfinite(x), x, 0.5 * (edges[1:] + edges[:-1]))
        ax1.errorbar(x, _arr(cur["response"]), yerr=_arr(cur["response_err"]), ls="none", marker="o", color=col, label=name)
        ax2.errorbar(x, _arr(cur["resolution"]), yerr=_arr(cur["resolution_err"]), ls="none", marker="o", color=col, label=name)
        drawn = True
    if not drawn:
        plt.close(fig)
        return []
    ax1.axhline(1.0, color="0.5", lw=0.8)
    ax1.set_ylabel("response (core mean)")
    ax2.set_ylabel("resolution (core $\\sigma/\\mu$)")
    ax2.set_xlabel("visible $p_T^{gen}$ [GeV]")
    ax1.legend(fontsize=8)
    ax1.set_title("hadronic taus: visible-pT response and resolution per decay mode", fontsize=11)
    return save(fig, stem)
