"""`python -m bench --smoke` keeps working: it completes and writes a report. No timing is
asserted (benchmarks are not tests; figures from a smoke run mean nothing). The scenarios run in
three groups of about the same length, each a run of its own, so that the suite's workers share
them (tests/conftest.py: BY_TEST)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e

pytest.importorskip("matplotlib", reason="matplotlib missing (pip install -e '.[dev]')")


# Every scenario the smoke run covers, each in one group; each group draws at least one plot.
GROUPS = {
    "fanout": "fanout",
    "throughput-ingest": "cancel_throughput,webhook_ingest",
    "latency-tracing-sender-catchup": "cancel_latency,media_cpu,tracing,graph_sender,catch_up",
}


@pytest.mark.timeout(170)
@pytest.mark.parametrize("scenarios", list(GROUPS.values()), ids=list(GROUPS))
def test_bench_smoke_writes_a_report(tmp_path: pathlib.Path, scenarios: str) -> None:
    out = tmp_path / "results"
    # The bench package, the gateway and the generated code from this tree, before whatever
    # PYTHONPATH the run was given.
    here = (ROOT / "service", ROOT / "clients" / "python", ROOT)
    pythonpath = os.pathsep.join(p for p in (*map(str, here), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--no-profile", "--out", str(out),
         "--only", scenarios],
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
