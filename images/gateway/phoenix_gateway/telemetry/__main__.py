"""``python -m phoenix_gateway.telemetry``: same as ``phoenix-gateway telemetry``."""

import sys

from phoenix_gateway.telemetry.server import main

sys.exit(main())
