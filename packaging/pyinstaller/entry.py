"""Entry point of the frozen program: the same command line as the ``callsync`` script."""

import sys

from gui.launcher import main

if __name__ == "__main__":
    sys.exit(main())
