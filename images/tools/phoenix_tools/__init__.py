"""phoenix-tools: the tool executor of a PhoenixTwin, behind a gRPC API.

Runs a twin's approved tool calls (command_exec, file_write, vector_query, or a
program) under a per-twin policy, in a bubblewrap sandbox, with a hard timeout.
Layers: settings -> requests (validation) -> policy + shell + programs (pure)
-> runtime + runner + sandbox + seccomp (process IO) -> executor -> server.
"""

__version__ = "0.1.0"

import os

# Set before anything imports grpc: with fork support on, grpc's pthread_atfork
# handlers run in every child this service forks while gRPC threads are live,
# which was seen to crash the child (exit 134/139) and logs a line per spawn.
# The service never needs gRPC in a forked child, so switch them off.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
