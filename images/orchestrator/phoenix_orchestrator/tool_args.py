"""The tools service's ``ExecutionRequest.args`` for an approved tool call (pure, no IO).

Kept apart from ``backends`` (the gRPC client) so that planning and replying
never import it: the orchestrator loads it on the first approved run.
"""

from __future__ import annotations

from collections.abc import Mapping

_COMMAND_KEYS = ("cmd", "command", "cmdline")


def execution_args(tool_name: str, args: Mapping[str, str]) -> list[str]:
    """The ``ExecutionRequest.args`` for an approved tool call.

    ``command_exec`` gets one element, the command line, as the original mapped
    it: ``cmd``, else ``command``, else ``cmdline``, else the only value, else
    ``""``. ``file_write`` gets ``[path, content]`` and ``vector_query``
    ``[query, namespace, top_k]`` (trailing empties dropped), the positional
    form phoenix-tools implements; the original sent ``key=value`` strings,
    which its tools service ran as a program (defect 6). Any other tool keeps
    the original's sorted ``key=value`` strings.
    """
    if tool_name == "command_exec":
        for key in _COMMAND_KEYS:
            if key in args:
                return [args[key]]
        values = list(args.values())
        return [values[0]] if len(values) == 1 else [""]
    if tool_name == "file_write":
        return [args.get("path", ""), args.get("content", "")]
    if tool_name == "vector_query":
        positional = [args.get("query", ""), args.get("namespace", ""), args.get("top_k", "")]
        while len(positional) > 1 and not positional[-1]:
            positional.pop()
        return positional
    return [f"{key}={args[key]}" for key in sorted(args)]


def missing_args(tool_name: str, args: Mapping[str, str]) -> list[str]:
    """Arguments a supported tool cannot run without; empty when the call is complete."""
    if tool_name == "command_exec":
        return [] if execution_args(tool_name, args)[0].strip() else ["cmd"]
    required = {"file_write": ("path", "content"), "vector_query": ("query",)}
    return [key for key in required.get(tool_name, ()) if key not in args]
