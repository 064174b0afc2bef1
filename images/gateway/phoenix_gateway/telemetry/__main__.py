"""``python -m phoenix_gateway.telemetry``: same as ``phoenix-gateway telemetry``."""

import sys

from phoenix_gateway.__main__ import main

sys.exit(main(["telemetry"]))
