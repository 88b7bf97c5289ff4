"""The server: bindings, connections, TLS, workers, shutdown."""
