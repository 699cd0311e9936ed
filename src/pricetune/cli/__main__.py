"""``python -m pricetune.cli``: the same as the ``pricetune`` command."""

import sys

from pricetune.cli import main

sys.exit(main())
