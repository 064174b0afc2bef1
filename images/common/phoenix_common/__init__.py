"""Code every PhoenixTwin component shares: settings, logging, telemetry, errors, gRPC stubs.

It imports no component; components import it and never each other
(checked by import-linter, see pyproject.toml).
"""

__version__ = "0.1.0"
