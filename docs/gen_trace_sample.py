"""Make the rendered trace of docs/observability.md from a real request.

    python docs/gen_trace_sample.py     # rewrites docs/trace-sample.json, docs/trace-viewer.html
    python docs/gen_trace_sample.py --png   # and docs/trace-viewer.png (needs chromium)

Serves ``examples/site`` on 127.0.0.1 (a free port) with tracing on and one module: ``POST
/upload-page`` composes a page from two child requests (``/parts/header.html`` and
``/parts/footer.html``, served by the built-in static file handler with
``BUFFER_RESPONSE``), then reads the upload while a watchdog task gives it 50 ms and calls
``ctx.cancel_io()``. The client sends 100 of the 1000 bytes it announced and then nothing, so
the read is cancelled and the page answers 408. The trace that the rule ``status>=400``
wrote is copied to ``docs/trace-sample.json`` and embedded in a copy of the package's
viewer (``trioiis/tracing_viewer.html``) as ``docs/trace-viewer.html``;
tests/test_tracing_viewer.py checks that the copy is the package viewer plus that data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import trio

import trioiis
from trioiis import (
    CloneFlags,
    ExecuteFlags,
    HttpContext,
    HttpModule,
    Notification,
    OperationAbortedError,
    Status,
)
from trioiis._observability.tracing import VIEWER

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MARK = '<script type="application/json" id="trace-data"></script>'


def embed(viewer_html: str, document: str) -> str:
    """The viewer with ``document`` (a trace's JSON text) in its trace-data element."""
    safe = document.replace("</", "<\\/")  # cannot close the script element early
    return viewer_html.replace(
        MARK, f'<script type="application/json" id="trace-data">\n{safe}\n</script>'
    )


class UploadPage(HttpModule):
    async def on_begin_request(self, ctx: HttpContext, provider: trioiis.EventProvider) -> Status:
        if ctx.request.path != "/upload-page" or ctx.get_parent_context() is not None:
            return Status.CONTINUE
        for url in ("/parts/header.html", "/parts/footer.html"):
            child = ctx.clone_context(CloneFlags.BASICS)
            child.request.set_http_method("GET")
            child.request.set_url(url)
            await ctx.run_child(child, ExecuteFlags.BUFFER_RESPONSE)

        async def watchdog() -> None:
            await trio.sleep(0.05)
            ctx.cancel_io()

        ctx.start_soon(watchdog)
        received = 0
        try:
            while ctx.request.remaining_entity_bytes:
                received += len(await ctx.request.read_entity_body(65536))
        except OperationAbortedError:
            ctx.response.clear()
            ctx.response.set_status(408, "Request Timeout")
            ctx.response.write(f"upload too slow: {received} bytes in 50 ms\n")
            ctx.response.set_need_disconnect()
        return Status.FINISH_REQUEST


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    info.set_request_notifications(trioiis.SimpleFactory(UploadPage), Notification.BEGIN_REQUEST)


async def make_trace(folder: Path) -> str:
    server = trioiis.HttpServer(
        trioiis.ServerConfig(
            root=ROOT / "examples" / "site",
            bindings=("127.0.0.1:0",),
            trace_dir=folder,
            trace_when="status>=400",
            limits=trioiis.Limits(linger_timeout=0.2),
        )
    )
    server.register_module("upload_page", register_module)
    async with trio.open_nursery() as nursery:
        ((host, port),) = await nursery.start(server.serve)
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream(host, port)
            async with stream:
                await stream.send_all(
                    b"POST /upload-page HTTP/1.1\r\nHost: example.test\r\n"
                    b"Content-Length: 1000\r\n\r\n" + b"x" * 100
                )
                answer = b""
                while b"bytes in 50 ms" not in answer:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        break
                    answer += chunk
        await server.shutdown(grace=2)
    (path,) = folder.glob("trace-*.json")
    return path.read_text(encoding="utf-8")


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        document = trio.run(make_trace, Path(folder))
    (DOCS / "trace-sample.json").write_text(document, encoding="utf-8")
    viewer = embed(VIEWER.read_text(encoding="utf-8"), document)
    (DOCS / "trace-viewer.html").write_text(viewer, encoding="utf-8")
    request = json.loads(document)["request"]
    print(f"{request['method']} {request['url']} -> {request['status']}: docs/trace-viewer.html")
    if "--png" in sys.argv:
        screenshot(DOCS / "trace-viewer.html", DOCS / "trace-viewer.png")


def screenshot(page: Path, png: Path) -> None:
    """A PNG of ``page`` taken by headless Chromium (``apt-get install -y chromium``)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not installed: apt-get install -y chromium")
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--hide-scrollbars",
        "--window-size=1200,660",
        f"--screenshot={png}",
        page.as_uri(),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    print(f"screenshot: {png.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
