"""Tests of phoenix-tools: pure policy units, the real server, and the sandbox under attack."""

import os

# grpc's fork handlers log a line per subprocess spawn while its threads run; the service
# spawns through _posixsubprocess and needs none of them.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
