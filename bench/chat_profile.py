"""Where a chat message's time goes: py-spy on the gateway and the orchestrator under load.

``python -m bench.chat_profile [MESSAGES [DIR]]`` starts the same three processes as
``make bench`` (orchestrator, telemetry, gateway), attaches ``py-spy record``
to the gateway and the orchestrator, sends MESSAGES plain chat messages over
one WebSocket and prints, per process, its CPU time per message and the
functions holding the most samples (self and inclusive). Idle time (the event
loop waiting in epoll) is left out, so percentages are of busy time. With DIR,
py-spy's raw (collapsed-stack) files are kept there, e.g. for a flame graph. Needs
py-spy (in the dev extra) and root or ptrace rights.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IDLE_FRAMES = ("select (selectors.py", "EpollSelector.select", "run_forever (uvloop")
TOP = 22


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summarize(raw: Path, top: int = TOP) -> str:
    """Self and inclusive shares of busy samples, from py-spy's ``--format raw`` output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        if any(idle in frames[-1] for idle in IDLE_FRAMES):
            continue
        count = int(count_text)
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"  busy samples: {total}", "  self:"]
    lines += [f"    {c / total:6.1%}  {f}" for f, c in own.most_common(top)]
    lines.append("  inclusive:")
    lines += [f"    {c / total:6.1%}  {f}" for f, c in inclusive.most_common(top)]
    return "\n".join(lines)


async def _send(url: str, count: int, twin: str) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, compression=None) as ws:
        for index in range(count):
            await ws.send(
                json.dumps({"session_id": "profile", "user_id": twin, "message": f"hi {index}"})
            )
            while json.loads(await ws.recv()).get("type") != "complete_message":
                pass


def main(argv: list[str]) -> int:
    from scripts.run_local import LocalStack, Ports, StackConfig

    messages = int(argv[0]) if argv else 3000
    keep = Path(argv[1]) if len(argv) > 1 else None  # where to copy py-spy's raw output
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    workdir = Path(tempfile.mkdtemp(prefix="phoenix-profile-chat-"))
    config = StackConfig(
        state_dir=workdir / "state",
        ports=Ports.free(),
        cwd=workdir,
        env={"LLM_PROVIDER": "mock", "LOG_LEVEL": "warning", "GATEWAY_RATE_LIMIT_PER_MINUTE": "0"},
        output=lambda _: None,
    )
    stack = LocalStack(config)
    try:
        stack.prepare()
        for name in ("orchestrator", "telemetry", "gateway"):
            stack.start(name)
        url = config.gateway_url.replace("http://", "ws://")
        url += f"/ws/chat/{config.twin}?token={stack.api_key}"
        asyncio.run(_send(url, 200, config.twin))  # warm up
        pids = {name: stack.processes[name].pid for name in ("gateway", "orchestrator")}
        spies = {
            name: subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--format",
                    "raw",
                    "--rate",
                    "1000",
                    "--nonblocking",
                    "--gil",
                    "--output",
                    str(workdir / f"{name}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name, pid in pids.items()
        }
        time.sleep(1.0)  # py-spy attaches
        cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        started = time.perf_counter()
        asyncio.run(_send(url, messages, config.twin))
        wall = time.perf_counter() - started
        cpu = {name: _cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        for spy in spies.values():
            spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
            spy.wait(60)
        print(f"{messages} messages in {wall:.1f}s ({wall / messages * 1000:.2f} ms each, wall)")
        for name in pids:
            print(f"\n{name}: {cpu[name] / messages * 1000:.3f} ms CPU per message")
            print(summarize(workdir / f"{name}.txt"))
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(workdir / f"{name}.txt", keep / f"{name}.txt")
    finally:
        stack.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
