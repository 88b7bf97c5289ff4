"""Static files, trioiis against nginx: one command, bounded, installs nothing.

    .venv/bin/python benchmarks/static.py [--duration 5] [--rounds 3] [--connections 50]
        [--no-write]

Needs ``nginx`` and ``wrk`` on the PATH (``apt-get install -y nginx-light wrk``); exits 2 with
that hint otherwise. Then:

1. Makes a temp folder with ``1k.bin`` (1 KiB) and ``1m.bin`` (1 MiB) of random bytes (so that
   no compression applies), and a temp nginx prefix with its own config, pid file and error log.
2. Starts, on 127.0.0.1 and two free ports, ``trioiis serve FOLDER --bind 127.0.0.1:PORT`` and
   ``nginx -p PREFIX -c nginx.conf`` (``daemon off; master_process on; worker_processes 1;``,
   ``sendfile on``, ``access_log off``); polls a TCP connect until each accepts and checks that
   both answer 200 with the right length for both files.
3. Measures interleaved rounds (trioiis 1K, nginx 1K, trioiis 1M, nginx 1M; ``--rounds``
   times) of ``wrk -t1 -c50 -d5s``, and prints the medians of requests/s and MB/s (wrk's
   Transfer/sec, headers included, in 10^6 bytes) and the ratios trioiis/nginx.
4. Writes the table and this command as the section "Static files vs nginx" of
   ``benchmarks/RESULTS.md`` (replacing that section if present, keeping the others;
   ``--no-write`` leaves the file alone).

Both servers are stopped in a ``finally`` (SIGTERM, then a kill after 10 s).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hello  # the start/stop helpers of benchmarks/hello.py

HERE = Path(__file__).resolve().parent
ROOT = hello.ROOT
HOST = hello.HOST  # loopback only
RESULTS = hello.RESULTS
SECTION = "## Static files vs nginx"
WRK_SLACK = 30  # seconds wrk may take beyond -d before it is killed
FILES = {"1K": ("1k.bin", 1024), "1M": ("1m.bin", 1024 * 1024)}
SERVERS = ("trioiis", "nginx")

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    types {{
        application/octet-stream bin;
    }}
    default_type application/octet-stream;

    server {{
        listen {host}:{port};
        root {root};
    }}
}}
"""


@dataclass
class Run:
    rps: list[float] = field(default_factory=list)
    mbps: list[float] = field(default_factory=list)


_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def parse_wrk(stdout: str) -> tuple[float, float]:
    """Requests/sec and Transfer/sec (in 10^6 bytes per second) from wrk's output."""
    rps = re.search(r"Requests/sec:\s*([\d.]+)", stdout)
    transfer = re.search(r"Transfer/sec:\s*([\d.]+)([KMGT]?B)", stdout)
    if rps is None or transfer is None:
        raise RuntimeError(f"could not read wrk's output:\n{stdout}")
    return float(rps.group(1)), float(transfer.group(1)) * _UNITS[transfer.group(2)] / 1e6


def run_wrk(wrk: str, url: str, args: argparse.Namespace) -> tuple[float, float, str]:
    command = [wrk, "-t1", f"-c{args.connections}", f"-d{args.duration}s", url]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=args.duration + WRK_SLACK, check=True
    )
    if "Non-2xx or 3xx responses" in result.stdout:
        raise RuntimeError(f"{url}: some responses were not 2xx/3xx\n{result.stdout}")
    rps, mbps = parse_wrk(result.stdout)
    return rps, mbps, shlex.join(command)


def check(port: int, name: str, size: int) -> None:
    """One GET, so that we never benchmark a 404: status 200 and ``size`` body bytes (read
    up to ``size``, not to the close: Hypercorn's trio worker keeps the connection open after
    ``Connection: close``)."""
    request = f"GET /{name} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n"
    with socket.create_connection((HOST, port), timeout=10.0) as sock:
        sock.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        while len(body) < size and (chunk := sock.recv(1 << 20)):
            body += chunk
    if not head.startswith(b"HTTP/1.1 200 ") or len(body) != size:
        raise RuntimeError(f"{HOST}:{port}/{name}: {head[:300]!r}, {len(body)} body bytes")


def trioiis_command(folder: Path, port: int) -> list[str]:
    trioiis = ROOT / ".venv" / "bin" / "trioiis"
    program = [str(trioiis)] if trioiis.exists() else [sys.executable, "-m", "trioiis.cli"]
    return [*program, "serve", str(folder), "--bind", f"{HOST}:{port}"]


def version(command: list[str]) -> str:
    with contextlib.suppress(Exception):
        result = subprocess.run(command, capture_output=True, text=True, timeout=10)
        return (result.stdout + result.stderr).strip().splitlines()[0]
    return "unknown"


def git_describe() -> str:
    with contextlib.suppress(Exception):
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "trioiis"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return head + (" with uncommitted changes in trioiis/" if dirty else "")
    return "unknown"


def fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}".replace(",", " ")


def render(
    runs: dict[tuple[str, str], Run], args: argparse.Namespace, command: str, info: str
) -> str:
    out = [SECTION, "", info, "", f"Command: `{command}`. Written by the script itself.", ""]
    out += [
        "| file | trioiis req/s | nginx req/s | trioiis MB/s | nginx MB/s | req/s trioiis/nginx |",
        "|---|---|---|---|---|---|",
    ]
    for size in FILES:
        t, n = runs["trioiis", size], runs["nginx", size]
        tr, nr = statistics.median(t.rps), statistics.median(n.rps)
        tm, nm = statistics.median(t.mbps), statistics.median(n.mbps)
        out.append(
            f"| {size} | {fmt(tr)} | {fmt(nr)} | {fmt(tm, 1)} | {fmt(nm, 1)} | **{tr / nr:.2f}** |"
        )
    out += [
        "",
        f"Medians over {args.rounds} interleaved rounds (trioiis 1K, nginx 1K, trioiis 1M, "
        f"nginx 1M) of `wrk -t1 -c{args.connections} -d{args.duration}s "
        "http://127.0.0.1:PORT/FILE`. MB/s is wrk's Transfer/sec (headers included) in "
        "10^6 bytes/s. The files are random bytes, so nothing is compressed. Both servers "
        "stay up for the whole run (one warm-up GET per file before the first round).",
        "",
        "Requests/s per round:",
        "",
        "| server, file | " + " | ".join(f"round {i + 1}" for i in range(args.rounds)) + " |",
        "|---|" + "---|" * args.rounds,
    ]
    for size in FILES:
        for server in SERVERS:
            cells = " | ".join(fmt(v) for v in runs[server, size].rps)
            out.append(f"| {server}, {size} | {cells} |")
    out += [
        "",
        "Servers (FOLDER and PREFIX are temp folders; PORT a free port):",
        "",
        "* trioiis: `.venv/bin/trioiis serve FOLDER --bind 127.0.0.1:PORT` (no config: the "
        "default static-site pipeline)",
        "* nginx: `nginx -p PREFIX -c PREFIX/nginx.conf` with `daemon off; master_process on; "
        "worker_processes 1;`, `sendfile on; tcp_nopush on; access_log off;`, "
        "`listen 127.0.0.1:PORT; root FOLDER;` (the config is written by the script)",
    ]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (50)")
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args(argv)

    nginx, wrk = shutil.which("nginx"), shutil.which("wrk")
    if nginx is None and Path("/usr/sbin/nginx").exists():
        nginx = "/usr/sbin/nginx"  # not on a non-root user's PATH on Debian
    missing = [name for name, path in (("nginx", nginx), ("wrk", wrk)) if path is None]
    if missing or nginx is None or wrk is None:
        print(
            f"not on the PATH: {', '.join(missing)}; install with "
            "`apt-get install -y nginx-light wrk` (this script installs nothing)",
            file=sys.stderr,
        )
        return 2

    shown = ".venv/bin/python benchmarks/static.py" + (f" {shlex.join(argv)}" if argv else "")
    started = datetime.datetime.now(datetime.UTC)
    load_before = os.getloadavg()[0]
    runs = {(server, size): Run() for server in SERVERS for size in FILES}
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="trioiis-static-") as temp:
        folder = Path(temp) / "site"
        prefix = Path(temp) / "nginx"
        folder.mkdir()
        prefix.mkdir()
        # nginx's worker drops to an unprivileged user when started as root: it must be
        # able to reach the files (mkdtemp makes the folder 0700)
        Path(temp).chmod(0o755)
        folder.chmod(0o755)
        for name, size in FILES.values():
            (folder / name).write_bytes(os.urandom(size))
            (folder / name).chmod(0o644)
        ports = {"trioiis": hello.free_port(), "nginx": hello.free_port()}
        conf = prefix / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(prefix=prefix, host=HOST, port=ports["nginx"], root=folder)
        )
        commands = {
            "trioiis": trioiis_command(folder, ports["trioiis"]),
            "nginx": [nginx, "-p", str(prefix), "-c", str(conf)],
        }
        logs = {server: open(Path(temp) / f"{server}.log", "w+b") for server in SERVERS}  # noqa: SIM115
        try:
            for server in SERVERS:
                processes.append(
                    subprocess.Popen(
                        commands[server],
                        cwd=ROOT,
                        stdout=subprocess.DEVNULL,
                        stderr=logs[server],
                    )
                )
                hello.wait_until_accepting(processes[-1], ports[server])
                for name, size in FILES.values():
                    check(ports[server], name, size)
            for round_no in range(1, args.rounds + 1):
                for size, (name, _) in FILES.items():
                    for server in SERVERS:
                        url = f"http://{HOST}:{ports[server]}/{name}"
                        rps, mbps, _ = run_wrk(wrk, url, args)
                        runs[server, size].rps.append(rps)
                        runs[server, size].mbps.append(mbps)
                        print(
                            f"round {round_no} {server:8} {size}: {rps:10.0f} req/s "
                            f"{mbps:9.1f} MB/s",
                            flush=True,
                        )
        except Exception:
            for server in SERVERS:
                logs[server].seek(0)
                sys.stderr.write(f"--- {server} stderr\n")
                sys.stderr.write(logs[server].read().decode(errors="replace")[-4000:])
            raise
        finally:
            for process in processes:
                with contextlib.suppress(Exception):
                    hello.stop(process)
            for log in logs.values():
                log.close()

    print()
    for size in FILES:
        t, n = runs["trioiis", size], runs["nginx", size]
        tr, nr = statistics.median(t.rps), statistics.median(n.rps)
        tm, nm = statistics.median(t.mbps), statistics.median(n.mbps)
        print(
            f"{size}: trioiis {tr:.0f} req/s {tm:.1f} MB/s | nginx {nr:.0f} req/s {nm:.1f} MB/s"
            f" | trioiis/nginx {tr / nr:.2f} (req/s), {tm / nm:.2f} (MB/s)"
        )
    info = (
        f"Run {started:%Y-%m-%d %H:%M} UTC on the shared {os.cpu_count()}-core machine, "
        f"loopback only, git {git_describe()}; Python {sys.version.split()[0]}, "
        f"{version([nginx, '-v'])}, {version([wrk, '-v']).split(' [')[0]}. wrk (one thread) "
        "shares the cores with the server under test. Load average (1 min) at the "
        f"start {load_before:.2f}, at the end {os.getloadavg()[0]:.2f}."
    )
    if not args.no_write:
        hello.write_results_section(SECTION, render(runs, args, shown, info))
        print(f"written: {RESULTS.relative_to(ROOT)}, section {SECTION[3:]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
