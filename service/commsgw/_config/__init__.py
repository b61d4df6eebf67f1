"""Settings: built once at start-up from the environment and the command line, then passed down.

Every setting has an environment variable and a flag (the flag wins); `SETTINGS` is the single
table that argparse, the validation and the README table are made from. Only the command-line
entry point hands the environment in; no other module reads it.
"""

from commsgw._config._clouds import (
    CLOUDS,
    EMULATOR_CA_FILE,
    EMULATOR_CLIENT_ID,
    EMULATOR_CLIENT_SECRET,
    EMULATOR_TENANT_ID,
    SKYPE_OPENID,
    UNSUPPORTED_CLOUDS,
    Cloud,
)
from commsgw._config._resolve import resolve
from commsgw._config._settings import DEFAULT_STATE_DIR, SETTINGS, Setting, Settings, setting
from commsgw._config._sources import add_arguments, from_sources, settings_table
from commsgw._config._values import Address
from commsgw._config._values import _bool as parse_bool  # a boolean setting's spellings

__all__ = [
    "CLOUDS",
    "DEFAULT_STATE_DIR",
    "EMULATOR_CA_FILE",
    "EMULATOR_CLIENT_ID",
    "EMULATOR_CLIENT_SECRET",
    "EMULATOR_TENANT_ID",
    "SETTINGS",
    "SKYPE_OPENID",
    "UNSUPPORTED_CLOUDS",
    "Address",
    "Cloud",
    "Setting",
    "Settings",
    "add_arguments",
    "from_sources",
    "parse_bool",
    "resolve",
    "setting",
    "settings_table",
]
