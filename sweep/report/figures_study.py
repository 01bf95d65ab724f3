"""The study document's figures: loss by position across the arms, far bands against
two stages, and the width transfer of the gains."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sweep.report.figure_data import _binned, _or_nan
from sweep.report.style import _finish, _mark_l_max, _pad, _palette, _save, plt


def plot_study_curves(curves: dict, study, found: dict, l_max: int, path: Path) -> Path | None:
    """BTLM's chart with its uncertainty, from ``found["curves"]``: the main arm's
    absolute loss per position bin, seed and document mean with its 95% band (left), and
    each schedule minus the reference per bin with its paired 95% band (right; bands the
    shared windows do not widen). Bins are the records' (powers of two and the band
    edges), drawn at their geometric centre from position 4 on, so no point is a single
    position. With a rotary arm, a third panel: rotary minus ALiBi for the same schedule,
    seeds and windows (``curves``: seed-mean per-position curves by arm)."""
    per = found.get("curves") or {}
    ref = found.get("reference")
    if ref not in per:
        return None
    roles = study.findings
    rope = curves.get(roles.get("rope_arm")) or {}
    main = curves.get(study.main) or {}
    both = [n for n in (ref, roles.get("btlm"), *(found.get("best_ramps") or [])[:1]) if n in rope]
    both = [n for n in both if n in main]
    n_ax = 3 if both else 2
    fig, axes = plt.subplots(1, n_ax, figsize=(5.6 * n_ax, 4.4), squeeze=False)
    names = sorted(per, key=lambda n: (n != ref, n))
    pal = _palette(len(names))
    colours = {n: pal(i) for i, n in enumerate(names)}
    ax, dx = axes[0][0], axes[0][1]
    for n in names:
        binned = per[n]
        hi_e = np.asarray(binned["edges"], dtype=float)
        lo_e = np.concatenate([[0.0], hi_e[:-1]])
        x = np.sqrt((lo_e + 1) * hi_e)  # bin (lo, hi]: positions lo+1..hi
        keep = hi_e >= 4
        y, lo, hi = (np.asarray(binned[k], dtype=float)[keep] for k in ("mean", "lo", "hi"))
        ax.plot(x[keep], y, color=colours[n], label=n, marker="o", ms=2.5)
        ax.fill_between(x[keep], lo, hi, color=colours[n], alpha=0.15, lw=0)
        vs_ref = binned.get("vs_ref")
        if vs_ref:
            y, lo, hi = (np.asarray(vs_ref[k], dtype=float)[keep] for k in ("mean", "lo", "hi"))
            dx.plot(x[keep], y, color=colours[n], label=n, marker="o", ms=2.5)
            dx.fill_between(x[keep], lo, hi, color=colours[n], alpha=0.15, lw=0)
    ax.set_ylabel("loss, nats (mean over seeds and windows)")
    ax.set_title(f"{study.main}: loss per position bin (95% bands)")
    dx.axhline(0, color="k", lw=0.8)
    dx.set_ylabel(f"loss minus {ref}, nats (below 0: better)")
    dx.set_title("minus the reference, paired by seed and window (95%)")
    if both:
        rx = axes[0][2]
        for n in both:
            xb, yb, _ = _binned(rope[n] - main[n], split=l_max + 1, per_octave=4)
            rx.plot(xb, yb, color=colours.get(n, "k"), label=n, marker="o", ms=2.5)
        rx.axhline(0, color="k", lw=0.8)
        rx.set_yscale("symlog", linthresh=0.01)
        rx.set_ylabel("rotary minus ALiBi, nats (symlog)")
        rx.set_title("rotary minus ALiBi (seed means)")
    for panel in axes[0]:
        panel.set_xscale("log", base=2)
        panel.set_xlabel("token position (bin centre)")
        panel.axvline(l_max, color="k", ls="--", lw=0.8)
        _mark_l_max(panel, l_max)
        panel.grid(alpha=0.3)
        panel.legend(fontsize=7)
    return _finish(fig, path)


def plot_study_bands(found: dict, study, path: Path) -> Path | None:
    """Paired difference from two stages per far band, for the negative control, the
    reference and every ramp of the main arm, with 95% intervals."""
    bands_ = found.get("bands") or []
    ramps = found.get("ramp_vs_btlm", {}).get("main", {})
    btlm_found = found.get("btlm", {})
    series = {}
    if btlm_found.get("negative_vs_btlm"):
        series[study.findings.get("negative")] = btlm_found["negative_vs_btlm"]
    if btlm_found.get("btlm_vs_reference"):  # reference - btlm: the sign flipped
        flip = {
            k: {"mean": -v["mean"], "lo": -v["hi"], "hi": -v["lo"]}
            for k, v in btlm_found["btlm_vs_reference"].items()
            if v.get("lo") is not None
        }
        series[found.get("reference")] = flip
    series.update(ramps)
    series = {k: v for k, v in series.items() if v}
    if not series or not bands_:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    x = np.arange(len(bands_))
    for i, (name, d) in enumerate(series.items()):
        mean = np.array([_or_nan((d.get(b) or {}).get("mean")) for b in bands_])
        lo = np.array([_or_nan((d.get(b) or {}).get("lo")) for b in bands_])
        hi = np.array([_or_nan((d.get(b) or {}).get("hi")) for b in bands_])
        off = 0.6 * (i - (len(series) - 1) / 2) / max(len(series), 1)
        bars = [mean - lo, hi - mean]
        ax.errorbar(x + off, mean, yerr=bars, fmt="o", ms=4, capsize=2, label=name)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, [b.replace("far_x", "≤ ") + "×l_max" for b in bands_])
    ax.set_ylabel(f"loss minus {study.findings.get('btlm')}, nats\n(below 0: better)")
    title = f"Far bands against {study.findings.get('btlm')} (paired 95%)"
    return _save(fig, ax, path, title, fontsize=7, ncol=2)


def plot_transfer(transfer: dict, path: Path) -> Path | None:
    """Each schedule's far_loss gain over the reference at the two widths."""
    labels = transfer.get("labels") or []
    if not labels:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    xs = np.array([transfer["gain_a"][k] for k in labels])
    ys = np.array([transfer["gain_b"][k] for k in labels])
    ax.scatter(xs, ys)
    for x, y, k in zip(xs, ys, labels):
        ax.annotate(k, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    lo, hi = _pad(min(xs.min(), ys.min(), 0), max(xs.max(), ys.max(), 0))
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls=":")
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel("far_loss gain over the reference, width 1 (nats)")
    ax.set_ylabel("far_loss gain over the reference, width 2 (nats)")
    rho = (
        "n/a"
        if transfer.get("rho") is None
        else f"{transfer['rho']:+.2f} [{transfer['lo']:+.2f}, {transfer['hi']:+.2f}]"
    )
    ax.set_title(f"Width transfer: Spearman {rho}")
    ax.grid(alpha=0.3)
    return _finish(fig, path)
