"""Built-in modules, each an ``HttpModule`` written only against the public API."""
