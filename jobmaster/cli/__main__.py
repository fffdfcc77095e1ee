"""``python -m jobmaster.cli``: the ``jobmaster`` command."""

from __future__ import annotations

import sys

from jobmaster.cli import main

sys.exit(main())
