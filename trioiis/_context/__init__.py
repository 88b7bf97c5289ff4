"""A request's context: request, response, the send path, WebSockets; what modules touch."""
