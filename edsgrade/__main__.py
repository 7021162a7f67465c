"""``python -m edsgrade``: the same as the ``edsgrade`` command."""
import sys

from .cli import main

sys.exit(main())
