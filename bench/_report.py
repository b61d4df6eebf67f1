"""bench/results/report.md and its PNG plots."""

from __future__ import annotations

import pathlib
from typing import Any

from bench._ctx import Result, Row, ratio_cell, spread


def targets_table(rows: list[Row], *, ab: str | None = None) -> list[str]:
    """The targets table: each side's median over its runs with (min-max) of the per-run
    figures, the ratio of the medians with (min-max) of the per-round ratios."""
    a, b = ("working tree", ab) if ab else ("gateway", "floor / baseline")
    out = [
        f"| scenario | metric | {a}: median (min-max) | {b}: median (min-max) | ratio of "
        "medians (per-round min-max) | target | result |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for r in rows:
        out.append(
            f"| {r.scenario} | {r.metric} | {spread(r.gw)} | {spread(r.base)} | "
            f"{ratio_cell(r)} | {r.target} | {r.verdict} |"
        )
    return out


def plot(spec: dict[str, Any], folder: pathlib.Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    kind = spec["kind"]
    if kind == "cdf":
        for name, values in spec["series"].items():
            if not values:
                continue
            xs = sorted(values)
            ys = [(i + 1) / len(xs) for i in range(len(xs))]
            ax.plot(xs, ys, label=name)
        ax.set_xscale("log")
        ax.set_ylabel("fraction of requests / events")
        ax.axhline(0.5, color="grey", lw=0.5, ls=":")
        ax.axhline(0.99, color="grey", lw=0.5, ls=":")
        ax.set_xlabel(spec["xlabel"])
    elif kind == "lines":
        for name, ys in spec["series"].items():
            ax.plot(spec["x"], ys, marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xticks(spec["x"])
        ax.set_xticklabels([str(x) for x in spec["x"]])
        ax.set_xlabel(spec["xlabel"])
        ax.set_ylabel(spec["ylabel"])
    elif kind == "bars":
        names = list(spec["series"])
        ax.bar(names, [spec["series"][n] for n in names])
        ax.set_ylabel(spec["ylabel"])
    ax.set_title(spec["title"])
    if kind != "bars":
        ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / spec["file"])
    plt.close(fig)
    return str(spec["file"])


def write(
    results: list[Result],
    folder: pathlib.Path,
    *,
    header: list[str],
    profiles: dict[str, list[tuple[str, float]]],
    footer: list[str],
    ab: str | None = None,
    filename: str = "report.md",
) -> pathlib.Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [r for res in results for r in res.rows]
    title = f"## A/B: working tree vs {ab}" if ab else "## Targets vs measured"
    lines = [*header, "", title, "", *targets_table(rows, ab=ab), ""]
    for res in results:
        lines += [f"## {res.title}", "", *res.lines, ""]
        for p in res.plots if not ab else []:
            file = plot(p, folder)
            if file:
                lines += [f"![{p['title']}]({file})", ""]
    if profiles:
        lines += [
            "## Profiles (py-spy)",
            "",
            "Share of the server's samples spent in (or under) each function, sampled at 250 Hz "
            "without pausing the process, during an extra run of the named load after its "
            "warm-up (those runs' figures are not reported: py-spy takes CPU on the load's "
            "core). The interpreter's, the event loop's and the threads' own frames are left "
            "out.",
            "",
        ]
        for name, top in profiles.items():
            lines += [f"### {name}", "", "| function (file) | % of samples |", "| --- | ---: |"]
            lines += [f"| `{f}` | {share:.1f} |" for f, share in top]
            lines.append("")
    lines += footer
    path = folder / filename
    path.write_text("\n".join(lines) + "\n")
    return path
