import sys

from commsgw._cli import main

sys.exit(main())
