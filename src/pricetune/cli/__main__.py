"""``python -m pricetune.cli``: the same as the ``pricetune`` command."""

import sys

from pricetune.cli import main

if __name__ == "__main__":  # importing the module (as doc tools do) runs nothing
    sys.exit(main())
