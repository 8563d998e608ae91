"""`python -m device` is `voice-device`."""

import sys

from .cli import main

sys.exit(main())
