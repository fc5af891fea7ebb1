"""``python -m gui``: the ``callsync`` command (:mod:`gui.launcher`)."""

import sys

from gui.launcher import main

sys.exit(main())
