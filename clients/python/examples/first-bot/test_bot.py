"""The first bot's test: the bot runs as it would in production (its own process, pointed at the
gateway), the emulator plays the caller, and the journal shows what the bot made Graph do.

    pip install 'commsgw-client[testing]' pytest   # and the gateway: the `commsgw` command
    pytest test_bot.py

The ``commsgw`` fixture (from ``commsgw_client.testing``) starts ``commsgw dev`` once for the
session on free ports and resets its emulator before each test.
"""

from __future__ import annotations

import pathlib
import queue
import subprocess
import sys
import threading

from commsgw_client.testing import CommsgwDev

BOT = pathlib.Path(__file__).with_name("bot.py")


class Bot:
    """bot.py as a process; its output lines as they come."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(BOT), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                self.output.append(line)
                self.lines.put(line)

    def wait_for_line(self, text: str, timeout: float = 30) -> None:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"the bot never said {text!r}: {self.text}") from None
            if text in line:
                return

    @property
    def text(self) -> str:
        return "".join(self.output)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=30)
        self._reader.join(timeout=30)  # it ends with the pipe, which it then closes


def test_caller_presses_1_during_the_menu_and_leaves_a_message(
    commsgw: CommsgwDev, tmp_path: pathlib.Path
) -> None:
    emulator = commsgw.emulator
    bot = Bot("--target", commsgw.target, "--ca-file", str(commsgw.ca_file),
              "--recordings", str(tmp_path))  # fmt: skip
    try:
        bot.wait_for_line("watching for calls")
        # the menu plays 30 s unless the bot cancels it
        call_id = emulator.ring(caller="+14255550100", prompt_s=30)
        emulator.set_caller(call_id, speech_after_s=0.2, speech_s=0.5)  # then silence
        emulator.wait_for_requests(
            method="POST", path_pattern="/playPrompt$", call_id=call_id, timeout=30
        )  # the menu started
        emulator.press_tones(call_id, "1")  # while the menu plays
        bot.wait_for_line("hung up")
    finally:
        bot.stop()

    verify = emulator.verify
    verify(1, method="POST", path_pattern="/answer$", call_id=call_id)
    verify(1, method="POST", path_pattern="/subscribeToTone$", call_id=call_id)
    verify(1, method="POST", path_pattern="/playPrompt$", call_id=call_id,
           body={"clientContext": "menu"})  # fmt: skip
    verify(1, method="POST", path_pattern="/cancelMediaProcessing$", call_id=call_id,
           body={"clientContext": "barge-in"})  # fmt: skip
    verify(1, method="POST", path_pattern="/recordResponse$", call_id=call_id,
           body={"clientContext": "message"})  # fmt: skip
    verify(1, method="DELETE", path_pattern=f"/communications/calls/{call_id}$", status=204)
    # the menu ended cancelled, as Graph ends a cancelled prompt
    (menu,) = [op for op in emulator.call(call_id).operations if op.client_context == "menu"]
    assert (menu.status, (menu.result_info or {}).get("subcode")) == ("failed", 8508)
    # the recording was downloaded, with its access token as the bearer token (else 401)
    (download,) = emulator.requests(method="GET", path="^/_emulator/recordings/")
    assert (download.status, download.headers.get("authorization")) == (200, "Bearer"), download
    (saved,) = tmp_path.glob("*.wav")
    assert download.path.endswith(saved.stem)
    assert saved.read_bytes()[:4] == b"RIFF", saved
