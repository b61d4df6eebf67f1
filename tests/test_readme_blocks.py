"""Every fenced code block of README.md and docs/*.md says how it is checked, and the ones meant
to run are run here, as written, against one `commsgw dev` on free ports.

The marker is the HTML comment right above the fence (above the fence's own start marker, such
as `<!-- emulator-controls:start -->`, when it has one); a block without one fails:

- `<!-- run: sh -->`, `<!-- run: sh call=incoming -->`, `<!-- run: python call=established -->`:
  run here. `sh` blocks run in bash (`-euo pipefail`) from the repository's root (`cwd=tmp`: from
  an empty temporary directory, for a block that writes files); `python` blocks are a script run
  with this Python and the call's id as its one argument. `call=incoming` gives the block a call
  the emulator just rang into the gateway (in `CALL`), `call=established` one the gateway has
  answered, `call=recorded` one with a finished recording (`RECORDING_URL`, `RECORDING_TOKEN`:
  its location and access token). The block is written for `make run`'s addresses; those (and only
  those: `ADDRESSES`) are replaced by the test dev's, which also stand in COMMSGW_TARGET,
  COMMSGW_EMULATOR_URL, COMMSGW_STATE_DIR and COMMSGW_DEV_*.
- `<!-- run-by: tests/test_x.py (tag) -->`: another test reads the block between
  `<!-- tag:start -->` and `<!-- tag:end -->` and runs it; checked here that it names the tag.
- `<!-- excerpt: path -->`: lines of a file that runs elsewhere; each of its lines (but a `...`
  line, which stands for lines left out) is checked to be one of that file's, in order.
- `<!-- not-run: reason -->`: cannot run here (a Docker daemon, a real tenant, a registry, a
  process that serves until interrupted, a sketch with your own values); the reason is
  required, and each file it names must exist.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from commsgw_client import SyncGatewayClient
from commsgw_client.testing import CommsgwDev, run_commsgw_dev

ROOT = pathlib.Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!--\s*(run|run-by|excerpt|not-run):\s*(.*?)\s*-->$")
COMMENT = re.compile(r"^<!--.*-->$")
KINDS = {"sh", "python"}
CALLS = {"none", "incoming", "established", "recorded"}
CWDS = {"root", "tmp"}


@dataclass(frozen=True)
class Block:
    path: pathlib.Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    kind: str | None  # run, run-by, excerpt, not-run; None: no marker
    arg: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    def run_spec(self) -> tuple[str, str, str]:
        """(sh | python, none | incoming | established | recorded, root | tmp) of a `run:`
        block."""
        words = self.arg.split()
        assert words and words[0] in KINDS, f"{self.where}: `run:` takes one of {KINDS}"
        options = dict(w.split("=", 1) for w in words[1:])
        assert set(options) <= {"call", "cwd"}, f"{self.where}: unknown options {options}"
        call, cwd = options.get("call", "none"), options.get("cwd", "root")
        assert call in CALLS, f"{self.where}: call= takes one of {CALLS}"
        assert cwd in CWDS, f"{self.where}: cwd= takes one of {CWDS}"
        return words[0], call, cwd


def blocks(path: pathlib.Path) -> list[Block]:
    lines = path.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("```"):
            i += 1
            continue
        lang = lines[i][3:].strip()
        end = next(j for j in range(i + 1, len(lines)) if lines[j].rstrip() == "```")
        kind, arg = None, ""
        k = i - 1
        while k >= 0 and COMMENT.match(lines[k].strip()):
            m = MARKER.match(lines[k].strip())
            if m:
                assert kind is None, f"{path.name}:{i + 1}: two markers"
                kind, arg = m[1], m[2]
            k -= 1
        found.append(Block(path, i + 1, lang, "\n".join(lines[i + 1 : end]) + "\n", kind, arg))
        i = end + 1
    return found


ALL = [b for f in FILES for b in blocks(f)]
RUNNABLE = [b for b in ALL if b.kind == "run"]


def test_the_files_have_blocks_and_readme_has_runnable_ones() -> None:
    readme = [b for b in RUNNABLE if b.path.name == "README.md"]
    assert len(readme) >= 5, [b.where for b in readme]


def test_every_block_says_how_it_is_checked() -> None:
    unmarked = [b.where for b in ALL if b.kind is None]
    assert unmarked == [], f"fenced blocks without a run/run-by/excerpt/not-run marker: {unmarked}"
    for b in RUNNABLE:
        b.run_spec()


def test_not_run_blocks_say_why_and_name_real_files() -> None:
    for b in ALL:
        if b.kind != "not-run":
            continue
        assert len(b.arg) > 20, f"{b.where}: a not-run block needs its reason"
        for name in re.findall(r"\b(?:tests|clients|docs|deploy)/[\w./-]+\w", b.arg):
            assert (ROOT / name).exists(), f"{b.where}: the reason names {name}, which is missing"


def test_run_by_blocks_are_read_by_the_test_they_name() -> None:
    for b in ALL:
        if b.kind != "run-by":
            continue
        m = re.fullmatch(r"(tests/\S+\.py) \(([\w-]+)\)", b.arg)
        assert m, f"{b.where}: run-by takes `tests/test_x.py (tag)`"
        test_file, tag = ROOT / m[1], m[2]
        assert test_file.is_file(), f"{b.where}: {m[1]} is missing"
        assert tag in test_file.read_text(), f"{b.where}: {m[1]} does not read {tag}"
        text = b.path.read_text()
        start = f"<!-- {tag}:start -->\n```"
        assert start in text and f"```\n<!-- {tag}:end -->" in text, f"{b.where}: no {tag} markers"
        assert b.code in text.split(start, 1)[1], f"{b.where}: the block is not between its markers"


def test_excerpts_are_lines_of_their_files_in_order() -> None:
    for b in ALL:
        if b.kind != "excerpt":
            continue
        source = ROOT / b.arg
        assert source.is_file(), f"{b.where}: {b.arg} is missing"
        lines = iter(line.strip() for line in source.read_text().splitlines())
        for wanted in (line.strip() for line in b.code.splitlines()):
            if wanted and wanted != "..." and not any(line == wanted for line in lines):
                pytest.fail(f"{b.where}: {wanted!r} is not (in this order) a line of {b.arg}")


# --- the runnable blocks, against one commsgw dev --------------------------------------------

# make run's addresses, as the blocks are written, and what stands for each in the test's dev
ADDRESSES = (
    "http://127.0.0.1:8080/api/calls",
    "https://127.0.0.1:8443",
    "127.0.0.1:50051",
    ".commsgw/emulator-ca.pem",
)


def _for(dev: CommsgwDev, code: str) -> str:
    values = (dev.webhook_url, dev.emulator_url, dev.target, str(dev.ca_file))
    for address, value in zip(ADDRESSES, values, strict=True):
        code = code.replace(address, value)
    return code


def _missing(reason: str) -> None:
    if os.environ.get("COMMSGW_INTEROP_STRICT") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CommsgwDev]:
    command = pathlib.Path(sys.executable).parent / "commsgw"
    env = {**os.environ, "COMMSGW_COMMAND": str(command)}
    with run_commsgw_dev(
        tmp_path_factory.mktemp("readme-dev"),
        args=["--media-op-seconds", "0.2"],
        env=env,
        command=[str(command)],
    ) as d:
        yield d


def _wait_state(dev: CommsgwDev, call_id: str, state: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while (now := dev.emulator.call(call_id).state) != state:
        assert time.monotonic() < deadline, f"call {call_id} is {now}, not {state}"
        time.sleep(0.02)


def _call(dev: CommsgwDev, call: str) -> dict[str, str]:
    """The variables of a block's call: CALL, and for a recorded one RECORDING_URL/_TOKEN."""
    if call == "none":
        return {"CALL": ""}
    call_id = dev.emulator.ring(caller="+14255550100")
    _wait_state(dev, call_id, "incoming")
    env = {"CALL": call_id}
    if call in ("established", "recorded"):
        with SyncGatewayClient(dev.target) as gw:
            gw.answer_call(call_id, timeout=10)
            _wait_state(dev, call_id, "established")
            if call == "recorded":
                op = gw.record_response(
                    call_id, max_record_duration_seconds=2, wait=True, timeout=30
                )
                assert op.recording_location and op.recording_access_token, op
                env["RECORDING_URL"] = op.recording_location
                env["RECORDING_TOKEN"] = op.recording_access_token
    return env


@pytest.mark.e2e
@pytest.mark.parametrize("block", RUNNABLE, ids=[b.where for b in RUNNABLE])
def test_the_block_runs_as_written(block: Block, dev: CommsgwDev, tmp_path: pathlib.Path) -> None:
    kind, call, cwd = block.run_spec()
    if re.search(r"\b(npx|node) ", block.code) and (
        shutil.which("node") is None or not (ROOT / "clients/node/node_modules").is_dir()
    ):
        _missing("Node.js or clients/node/node_modules is missing (apt-get install nodejs npm)")
    buf = "tools/node_modules/.bin/buf"
    if buf in block.code and not (ROOT / buf).exists():
        _missing("buf is not installed: `make run` installs it into tools/node_modules")
    dev.check_running()
    dev.emulator.reset()
    call_env = _call(dev, call)
    code = _for(dev, block.code)
    env = {
        **os.environ,
        **dev.env,
        "COMMSGW_DEV_TARGET": dev.target,
        "COMMSGW_DEV_EMULATOR_URL": dev.emulator_url,
        "COMMSGW_DEV_WEBHOOK_URL": dev.webhook_url,
        "COMMSGW_DEV_CA_FILE": str(dev.ca_file),
        **call_env,
    }
    (tmp_path / "cwd").mkdir()
    if kind == "sh":
        argv = ["bash", "-euo", "pipefail", "-c", code]
    else:
        script = tmp_path / "block.py"
        script.write_text(code)
        argv = [sys.executable, str(script), call_env["CALL"]]
    proc = subprocess.run(
        argv,
        cwd=ROOT if cwd == "root" else tmp_path / "cwd",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = f"{block.where} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    assert proc.returncode == 0, output
