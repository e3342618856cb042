"""``python -m mtl_moe`` is the same as the ``mtl-moe`` console script."""

import sys

from mtl_moe.cli import main

sys.exit(main())
