"""The telemetry producer: host metrics as Server-Sent Events (``phoenix-gateway telemetry``).

It runs in the gateway image as its own process (its own container in a pod),
listening on ``TELEMETRY_PORT`` (8183); the gateway proxies its stream.
"""
