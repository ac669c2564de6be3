import sys

from amnesiac.cli import main

sys.exit(main())
