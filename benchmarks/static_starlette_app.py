"""Starlette's StaticFiles on the folder named by ``STATIC_FOLDER`` (for static_starlette.py)."""

from __future__ import annotations

import os

from starlette.staticfiles import StaticFiles

app = StaticFiles(directory=os.environ["STATIC_FOLDER"])
