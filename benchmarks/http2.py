"""HTTP/2 side by side: trioiis, Hypercorn's Trio worker and nginx under h2load; and the time
from a client's RST_STREAM to the handler being cancelled. One command, bounded, loopback only.

    .venv/bin/python benchmarks/http2.py [--duration 5] [--rounds 2] [--resets 500]
        [--install] [--no-write]

Needs ``h2load`` (Debian ``nghttp2-client``) and ``nginx`` (``nginx-light``); with
``--install`` (as root) it runs ``apt-get update`` and ``apt-get install -y nghttp2-client
nginx-light`` when one is missing, else it skips what it cannot run, with a note.
Hypercorn comes from the ``bench`` extra (``pip install -e '.[bench]'``).

1. Throughput. Starts each server on 127.0.0.1 and a free port, prior-knowledge h2c:

   * ``trioiis``: ``trioiis serve ROOT --config trioiis.toml`` with the hello module
     (``examples/modules/hello.py``), ``max_requests_per_connection = 0`` (h2load does not
     reconnect after a GOAWAY);
   * ``hypercorn-trio``: ``hypercorn --worker-class trio --workers 0`` with
     ``benchmarks/asgi_h2_apps.py`` (a raw ASGI app: ``/hello``, and ``/1k.bin`` read from
     disk per request);
   * ``nginx``: ``listen ... http2`` (h2c), ``return 200`` for ``/hello``, the file from its
     root, one worker, no access log;
   * the floors of ``benchmarks/h2_trio.py``, ``/hello`` only: ``trio + h2`` (answers at
     once) and ``design floor`` (a task, a nursery and a cancel scope per stream, one writer
     task: what the design costs before any pipeline).

   Then interleaved rounds of ``h2load -c 10 -m 10 -D DURATION --warm-up-time 1`` for
   ``/hello`` and ``/1k.bin``: requests/s, the medians over the rounds, and the ratios.
2. RST_STREAM to cancellation. For trioiis (a module that sends its head, then awaits
   forever) and Hypercorn (an ASGI app that does the same): ``--resets`` streams, each
   opened, its response head awaited (the handler is running), then reset; the handler
   writes ``time.monotonic()`` (one clock for every process on Linux) when it is cancelled
   (trio.Cancelled) or when it is told of the disconnect (ASGI ``http.disconnect``), into a
   file; the client writes the moment it sent the RST_STREAM. p50/p99 of the differences,
   and how many handlers were never cancelled within 1 s after the last reset. A new
   connection every 100 resets (below trioiis's rapid-reset limit).
3. Memory per idle connection (``--idle`` connections, each served one ``GET /hello``,
   then left open), HTTP/1.1 and HTTP/2, each protocol in a freshly started trioiis.
4. Writes the tables and this command as the section "HTTP/2" of
   benchmarks/RESULTS.md (``--no-write``: leaves it alone). ``--rounds 0``, ``--resets 0``
   or ``--idle 0`` leave that part out (then use ``--no-write``: the section would lose it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hello

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SECTION = "## HTTP/2"
H2LOAD_SLACK = 30
RESETS_PER_CONNECTION = 100

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen {host}:{port} http2;
        root {root};
        location = /hello {{ default_type text/plain; return 200 "Hello, world!\\n"; }}
    }}
}}
"""

TRIOIIS_CONF = """\
[limits]
max_requests_per_connection = 0

[[modules]]
name = "hello"
target = "{root}/examples/modules/hello.py:register_module"
"""

SLEEPER_MODULE = """\
import os
import time

import trio

import trioiis
from trioiis import HttpModule, Notification, Status
from trioiis._lifecycle import Event

LOG = os.environ["TRIOIIS_CANCEL_LOG"]


class Sleeper(HttpModule):
    async def on_begin_request(self, ctx, provider):
        if not ctx.request.path.startswith("/sleep/"):
            return Status.CONTINUE
        await ctx.response.flush()  # the head goes out: the client knows it runs
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            now, trio_now = time.monotonic(), trio.current_time()
            gone = ctx.lifecycle.when(Event.PEER_GONE)  # when the server read the reset
            with open(LOG, "a") as log:
                log.write(f"{ctx.request.path[7:]} cancelled {now}\\n")
                if gone is not None:
                    log.write(f"{ctx.request.path[7:]} seen {now - (trio_now - gone)}\\n")
            raise
        return Status.FINISH_REQUEST


def register_module(version, info, server):
    info.set_request_notifications(trioiis.SimpleFactory(Sleeper), Notification.BEGIN_REQUEST)
"""


def _which(name: str) -> str | None:
    found = shutil.which(name)
    if found is None and Path(f"/usr/sbin/{name}").exists():
        found = f"/usr/sbin/{name}"
    return found


def _install(packages: list[str]) -> None:
    subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=300)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", *packages],
        check=True,
        timeout=600,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


def _start(
    argv: list[str], port: int, stack: contextlib.ExitStack, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    log = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 (closed by the stack)
    process = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL,
        env={**os.environ, **env},
    )  # fmt: skip
    stack.callback(hello.stop, process)
    try:
        hello.wait_until_accepting(process, port)
    except (RuntimeError, OSError) as exc:
        log.seek(0)
        raise RuntimeError(f"{argv[:4]} did not start: {exc}\n{log.read()[-2000:]!r}") from exc
    return process


def _servers(
    work: Path, h2load: str | None, nginx: str | None
) -> dict[str, Callable[[int], list[str]]]:
    servers: dict[str, Callable[[int], list[str]]] = {}
    conf = work / "trioiis.toml"
    conf.write_text(TRIOIIS_CONF.format(root=ROOT))
    servers["trioiis"] = lambda port: [
        sys.executable, "-m", "trioiis.cli", "serve", str(work / "site"), "--config", str(conf),
        "--bind", f"{HOST}:{port}", "--log-level", "WARNING",
    ]  # fmt: skip
    try:
        import hypercorn  # noqa: F401
    except ImportError:
        print("note: hypercorn is not installed (pip install -e '.[bench]'): skipped")
    else:
        servers["hypercorn-trio"] = lambda port: [
            sys.executable, "-m", "hypercorn", "--worker-class", "trio", "--workers", "0",
            "--bind", f"{HOST}:{port}", "--keep-alive", "75", "--log-level", "warning",
            "benchmarks/asgi_h2_apps.py:app",
        ]  # fmt: skip
    if nginx is not None:
        prefix = work / "nginx"
        prefix.mkdir(exist_ok=True)

        def nginx_argv(port: int) -> list[str]:
            text = NGINX_CONF.format(prefix=prefix, host=HOST, port=port, root=work / "site")
            (prefix / "nginx.conf").write_text(text)
            return [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf")]

        servers["nginx"] = nginx_argv
    else:
        print("note: nginx is not installed (apt-get install -y nginx-light): skipped")
    floor = [sys.executable, str(ROOT / "benchmarks" / "h2_trio.py")]
    servers["trio + h2"] = lambda port: [*floor, str(port)]
    servers["design floor"] = lambda port: [*floor, str(port), "--design"]
    return servers


#: Servers that answer every path with the hello body: measured on ``/hello`` only.
HELLO_ONLY = {"trio + h2", "design floor"}


def _h2load(h2load: str, url: str, duration: float) -> tuple[float, str]:
    argv = [h2load, "-c", "10", "-m", "10", "-D", f"{duration:g}", "--warm-up-time", "1", url]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration + H2LOAD_SLACK, check=False
    )
    match = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", done.stdout)
    failed = re.search(r"requests: .*?(\d+) failed", done.stdout)
    if match is None or done.returncode != 0:
        raise RuntimeError(f"h2load failed: {done.stdout[-800:]} {done.stderr[-400:]}")
    if failed is not None and int(failed.group(1)):
        print(f"  note: {failed.group(1)} requests failed on {url}")
    return float(match.group(1)), " ".join(argv[:-1])


async def _reset_once(
    client: h2.connection.H2Connection, stream: trio.SocketStream, i: int
) -> float:
    sid = client.get_next_available_stream_id()
    headers = [(":method", "GET"), (":path", f"/sleep/{i}"), (":scheme", "http"),
               (":authority", HOST)]  # fmt: skip
    client.send_headers(sid, headers, end_stream=True)
    await stream.send_all(client.data_to_send())
    with trio.fail_after(10):
        while True:
            data = await stream.receive_some(65536)
            if not data:
                raise RuntimeError("the server closed the connection")
            events = client.receive_data(data)
            if out := client.data_to_send():
                await stream.send_all(out)
            if any(
                isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid for e in events
            ):
                break
    client.reset_stream(sid)
    sent = time.monotonic()
    await stream.send_all(client.data_to_send())
    return sent


async def _resets(port: int, count: int) -> dict[str, float]:
    sent: dict[str, float] = {}
    done = 0
    while done < count:
        stream = await trio.open_tcp_stream(HOST, port)
        async with stream:
            client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            client.initiate_connection()
            await stream.send_all(client.data_to_send())
            for _ in range(min(RESETS_PER_CONNECTION, count - done)):
                sent[str(done)] = await _reset_once(client, stream, done)
                done += 1
                await trio.sleep(0.005)  # paced: a handler's cancel is not queued behind others
            await trio.sleep(1.0)  # the last ones' handlers get their second
    return sent


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])


async def _idle_connections(port: int, count: int, http2: bool) -> list[trio.SocketStream]:
    """``count`` connections, each served one request, then left open and idle."""
    streams = []
    for _ in range(count):
        stream = await trio.open_tcp_stream(HOST, port)
        if http2:
            client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            client.initiate_connection()
            client.send_headers(
                1, [(":method", "GET"), (":path", "/hello"), (":scheme", "http"),
                    (":authority", HOST)], end_stream=True,
            )  # fmt: skip
            await stream.send_all(client.data_to_send())
            ended = False
            with trio.fail_after(10):
                while not ended:
                    events = client.receive_data(await stream.receive_some(65536))
                    ended = any(isinstance(e, h2.events.StreamEnded) for e in events)
                    if out := client.data_to_send():
                        await stream.send_all(out)
        else:
            await stream.send_all(f"GET /hello HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            with trio.fail_after(10):
                data = b""
                while not data.endswith(b"Hello, world!\n"):
                    data += await stream.receive_some(65536)
        streams.append(stream)
    return streams


def _idle_memory(start: Callable[[int, contextlib.ExitStack], int], count: int) -> dict[str, float]:
    """KiB of server RSS per idle connection, HTTP/1.1 and HTTP/2, each measured in a freshly
    started server (``start(port, stack)`` gives its pid): the memory a first set of
    connections freed would otherwise be reused by the second."""
    result = {}
    for name, http2 in (("HTTP/1.1", False), ("HTTP/2", True)):

        async def run(port: int, pid: int, http2: bool = http2) -> float:
            await _idle_connections(port, 20, http2)  # warm-up (closed when collected)
            await trio.sleep(0.5)
            before = _rss_kib(pid)
            streams = await _idle_connections(port, count, http2)
            await trio.sleep(0.5)
            after = _rss_kib(pid)
            for stream in streams:
                await stream.aclose()
            return (after - before) / count

        with contextlib.ExitStack() as own:
            port = hello.free_port()
            result[name] = trio.run(run, port, start(port, own))
    return result


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cancel_times(log: Path, sent: dict[str, float]) -> dict[str, list[float]]:
    seen: dict[str, dict[str, float]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            key, kind, when = line.split()
            seen.setdefault(kind, {}).setdefault(key, float(when))
    result = {
        kind: [(times[k] - sent[k]) * 1000 for k in sent if k in times]
        for kind, times in seen.items()
    }
    if "seen" in seen:  # the server's reading of the reset (PEER_GONE) splits the time
        cancelled, read = seen["cancelled"], seen["seen"]
        result["seen→cancelled"] = [(cancelled[k] - read[k]) * 1000 for k in read if k in cancelled]
    return result


def _cancel_section(
    work: Path, servers: dict[str, Callable[[int], list[str]]], env: dict[str, str], resets: int
) -> list[str]:
    """Time from RST_STREAM to the handler's cancellation, trioiis and Hypercorn: rows."""
    cancel_rows = [
        "| server | handler | cancelled | p50 ms | p99 ms | never (of N) |",
        "|--------|---------|-----------|-------:|-------:|-------------:|",
    ]
    sleeper_port = hello.free_port()
    conf = work / "sleeper.toml"
    conf.write_text(
        '[limits]\nmax_requests_per_connection = 0\n\n[[modules]]\nname = "sleeper"\n'
        f'target = "{work / "sleeper.py"}:register_module"\n'
    )
    targets = {
        "trioiis": [
            sys.executable, "-m", "trioiis.cli", "serve", str(work / "site"),
            "--config", str(conf), "--bind", f"{HOST}:{sleeper_port}",
            "--log-level", "WARNING",
        ],
    }  # fmt: skip
    if "hypercorn-trio" in servers:
        targets["hypercorn-trio"] = servers["hypercorn-trio"](sleeper_port)
    for name, argv_ in targets.items():
        log = work / "cancel.log"
        log.unlink(missing_ok=True)
        with contextlib.ExitStack() as own:
            _start(argv_, sleeper_port, own, env)
            sent = trio.run(_resets, sleeper_port, resets)
        times = _cancel_times(log, sent)
        handler = "module" if name == "trioiis" else "raw ASGI app"
        for kind in ("cancelled", "disconnect", "seen", "seen→cancelled"):
            got = times.get(kind, [])
            if kind != "cancelled" and not got:
                continue
            p50 = f"{_percentile(got, 0.5):.2f}" if got else "-"
            p99 = f"{_percentile(got, 0.99):.2f}" if got else "-"
            never = len(sent) - len(got)
            cancel_rows.append(
                f"| {name} | {handler} | {kind} | {p50} | {p99} | {never} of {len(sent)} |"
            )
            print(cancel_rows[-1])
    return [
        *cancel_rows,
        "",
        f"{resets} streams each opened, its response head awaited, then reset; a new "
        f"connection every {RESETS_PER_CONNECTION}. `cancelled`: the handler's await raised "
        "trio.Cancelled; `disconnect`: the ASGI app was handed `http.disconnect` (it would "
        "have to stop by itself). Never: no such moment within 1 s after its reset. For "
        "trioiis, `seen`: from the client's RST_STREAM to the server having read it (the "
        "request's PEER_GONE: the kernel, the wake-up of the server's process, h2's parsing) "
        "and `seen→cancelled`: from there to the handler's `except trio.Cancelled` (the "
        "server's own part).",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--resets", type=int, default=500)
    parser.add_argument("--idle", type=int, default=500)
    parser.add_argument("--install", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    h2load, nginx = _which("h2load"), _which("nginx")
    if args.install and (h2load is None or nginx is None):
        _install(["nghttp2-client", "nginx-light"])
        h2load, nginx = _which("h2load"), _which("nginx")
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "site").mkdir()
        (work / "site" / "1k.bin").write_bytes(bytes(range(256)) * 4)
        work.chmod(0o755)  # nginx's workers run as another user
        servers = _servers(work, h2load, nginx)
        env = {"ASGI_H2_ROOT": str(work / "site"), "TRIOIIS_CANCEL_LOG": str(work / "cancel.log")}
        (work / "sleeper.py").write_text(SLEEPER_MODULE)
        if h2load is None:
            print("note: h2load is not installed (apt-get install -y nghttp2-client): no load")
        elif args.rounds:
            runs: dict[tuple[str, str], list[float]] = {}
            command = ""
            for _ in range(args.rounds):
                for path in ("/hello", "/1k.bin"):
                    for name, make in servers.items():
                        if name in HELLO_ONLY and path != "/hello":
                            continue
                        with contextlib.ExitStack() as own:  # a fresh server for every run
                            port = hello.free_port()
                            _start(make(port), port, own, env)
                            url = f"http://{HOST}:{port}{path}"
                            rate, command = _h2load(h2load, url, args.duration)
                        runs.setdefault((name, path), []).append(rate)
                        print(f"{name:15} {path:8} {rate:10.0f} req/s")
            lines += [
                "| server | /hello req/s | /1k.bin req/s | hello vs trioiis | 1 KiB vs trioiis |",
                "|--------|-------------:|--------------:|-----------------:|-----------------:|",
            ]
            base = {p: statistics.median(runs["trioiis", p]) for p in ("/hello", "/1k.bin")}
            for name in servers:
                hello_rate = statistics.median(runs[name, "/hello"])
                file_rate, file_ratio = "—", "—"
                if name not in HELLO_ONLY:
                    rate = statistics.median(runs[name, "/1k.bin"])
                    file_rate, file_ratio = f"{rate:.0f}", f"{rate / base['/1k.bin']:.2f}x"
                lines.append(
                    f"| {name} | {hello_rate:.0f} | {file_rate} | "
                    f"{hello_rate / base['/hello']:.2f}x | {file_ratio} |"
                )
            lines += [
                "",
                f"`{command} http://127.0.0.1:PORT/PATH`, medians over {args.rounds} "
                "interleaved rounds (prior-knowledge h2c), a freshly started server for each "
                "run (with one server for all runs, Hypercorn's Trio worker answered nothing "
                "after its first /1k.bin run; the cause was not looked into).",
                "",
            ]
        # -- memory per idle connection (trioiis)
        if args.idle:
            idle = _idle_memory(
                lambda port, own: _start(servers["trioiis"](port), port, own, env).pid, args.idle
            )
            lines += [
                "| trioiis, idle connection | KiB of server RSS each |",
                "|--------------------------|----------------------:|",
                *(f"| {name} | {kib:.1f} |" for name, kib in idle.items()),
                "",
                f"{args.idle} connections, each served one `GET /hello`, then left open; the "
                "server's VmRSS before and after, divided by the connections; a freshly "
                "started server for each protocol.",
                "",
            ]
            print(lines[-6:])
        # -- RST_STREAM to cancellation
        if args.resets:
            lines += _cancel_section(work, servers, env, args.resets)
    section = "\n".join(
        [
            SECTION,
            "",
            f"`.venv/bin/python benchmarks/http2.py --duration {args.duration:g} "
            f"--rounds {args.rounds} --resets {args.resets} --idle {args.idle}`, "
            f"{time.strftime('%Y-%m-%d')}, 2 shared cores (load average "
            f"{os.getloadavg()[0]:.0f} when it ended: other people's jobs ran at the same time).",
            "",
            *lines,
            "",
        ]
    )
    print(section)
    if not args.no_write:
        hello.write_results_section(SECTION, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
