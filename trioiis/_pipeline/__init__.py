"""The IIS integrated pipeline: notifications, module registration, child requests."""
