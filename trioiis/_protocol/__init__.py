"""The wire: HTTP/1.1, HTTP/2 and in-memory drivers, and the per-request Transport seam."""
