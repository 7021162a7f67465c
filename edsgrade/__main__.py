"""``python -m edsgrade``: the same as the ``edsgrade`` command."""
import sys

from edsgrade.cli import main

sys.exit(main())
