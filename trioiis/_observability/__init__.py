"""Observability: counters, failed-request traces, access-log lines, log files."""
