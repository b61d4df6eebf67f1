"""`python -m bench --smoke` keeps working: it completes and writes a report. No timing is
asserted (benchmarks are not tests; figures from a smoke run mean nothing)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e

pytest.importorskip("matplotlib", reason="matplotlib missing (pip install -e '.[dev]')")


@pytest.mark.timeout(170)
def test_bench_smoke_writes_a_report(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "results"
    # The bench package, the gateway and the generated code from this tree, before whatever
    # PYTHONPATH the run was given.
    here = (ROOT / "service", ROOT / "clients" / "python", ROOT)
    pythonpath = os.pathsep.join(p for p in (*map(str, here), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--no-profile", "--out", str(out),
         "--only", "cancel_latency,media_cpu,cancel_throughput,tracing,graph_sender,"
         "webhook_ingest,fanout,catch_up"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": pythonpath},
        capture_output=True,
        text=True,
        timeout=160,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = (out / "report.md").read_text()
    assert "## Targets vs measured" in report
    assert list(out.glob("*.png"))
