"""The PhoenixTwin edge: WebSocket chat, the orchestrator proxy, telemetry and the console.

Two processes ship in this package: the gateway (``phoenix-gateway``) and the
telemetry producer (``phoenix-gateway telemetry``), which the gateway proxies.
"""
