"""``python -m optvol``."""

import sys

from optvol.cli import main

sys.exit(main())
