"""``python -m commsgw.emulator``."""

import sys

from commsgw.emulator import main

sys.exit(main(sys.argv[1:]))
