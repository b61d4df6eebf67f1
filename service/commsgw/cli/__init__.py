"""The `commsgw` command: run the gateway or the emulator, and act on calls as a person.

The only part of the package that reads the process environment (it hands it to the settings).
Talks to a gateway through `commsgw_client` only; may import every part of the gateway.
"""

from commsgw.cli._main import main

__all__ = ["main"]
