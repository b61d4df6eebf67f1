import sys

from commsgw.cli import main

sys.exit(main())
