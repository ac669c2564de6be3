"""``python -m amnesiac.cli``, as ``python -m amnesiac``."""

import sys

from amnesiac.cli import main

sys.exit(main())
