"""The demo's day as a PNG: one panel per moment of the day (the site clock runs only
around them), each showing the site's draw by kind (mining, GPU, overhead, the load the
meter shows beyond the parts) under the envelope and the operator's limit (the envelope
lowered ahead of a cut by the lead time), the committed draw and the meter's reading (the
site's true draw), with the limit changes marked."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

KINDS = (
    ("overhead", "overhead (fixed load, PUE)", "#9e9e9e"),
    ("unmodelled", "unmodelled (on the meter only)", "#8d6e63"),
    ("gpu", "GPU leases", "#2e7d32"),
    ("mining", "mining", "#f9a825"),
)


def draw(
    moments: Sequence[Any],
    samples: Sequence[Sequence[Any]],
    path: Path,
    tz: ZoneInfo,
    title: str,
    footer: str,
) -> Path:
    """``samples[i]`` are the looks taken during ``moments[i]`` (each a Sample)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    shown = [(m, ss) for m, ss in zip(moments, samples, strict=True) if ss]
    cols = 3
    rows = (len(shown) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(15, 4.3 * rows), squeeze=False)
    top = max(max(max(s.envelope_kw, s.limit_kw, s.committed_kw) for s in ss) for _, ss in shown)
    for ax, (moment, ss) in zip(axes.flat, shown, strict=False):
        at = [s.at for s in ss]
        mw = {k: [s.draw.get(k, 0.0) / 1000 for s in ss] for k, _, _ in KINDS}
        ax.stackplot(
            at,
            *(mw[k] for k, _, _ in KINDS),
            labels=[label for _, label, _ in KINDS],
            colors=[c for _, _, c in KINDS],
            step="post",
            alpha=0.85,
        )
        ax.step(at, [s.envelope_kw / 1000 for s in ss], where="post", color="#c62828", lw=2,
                label="envelope")  # fmt: skip
        ax.step(at, [s.limit_kw / 1000 for s in ss], where="post", color="#c62828", lw=1,
                ls="--", label="operator's limit (lead time)")  # fmt: skip
        ax.step(at, [s.committed_kw / 1000 for s in ss], where="post", color="#1565c0", lw=1.2,
                label="committed (conservative)")  # fmt: skip
        meter = [(s.at, s.meter_kw / 1000) for s in ss if s.meter_kw is not None]
        if meter:
            ax.plot(*zip(*meter, strict=True), color="black", lw=0.9, ls=":",
                    label="meter (true draw)")  # fmt: skip
        for before, after in itertools.pairwise(ss):
            if abs(after.envelope_kw - before.envelope_kw) > 1e-6:
                ax.axvline(after.at, color="#c62828", alpha=0.35, lw=6)
        ax.axvline(moment.at, color="#424242", lw=0.8)
        ax.set_title(
            f"{moment.at.astimezone(tz):%H:%M}  " + "\n".join(textwrap.wrap(moment.story, 60)),
            fontsize=8.5,
            loc="left",
        )
        ax.set_ylim(0, top / 1000 * 1.1)
        ax.set_ylabel("MW")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=tz))  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(mdates.MinuteLocator(byminute=range(0, 60, 2)))  # type: ignore[no-untyped-call]
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.02))  # fmt: skip
    fig.suptitle(title, fontsize=11)
    fig.text(0.01, 0.005, footer, fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
