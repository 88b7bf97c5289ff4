"""A Flask app for trioiis (it runs in a bounded pool of worker threads): see trioiis.toml."""

from __future__ import annotations

from flask import Flask, request

app = Flask(__name__)
# Let errors reach the server, so that its custom error pages answer them.
app.config["PROPAGATE_EXCEPTIONS"] = True


@app.route("/")
def index() -> str:
    return f"the shop, mounted at {request.root_path}"


@app.route("/echo", methods=["POST"])
def echo() -> bytes:
    return request.get_data()
