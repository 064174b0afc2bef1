"""Gateway and telemetry producer tests against fake upstreams on 127.0.0.1."""
