#!/usr/bin/env bash
# REDbot: lint a few URLs of the sample site served by trioiis.
#
#     python3 -m venv .venv-redbot && .venv-redbot/bin/pip install redbot   # once
#     (its own venv on purpose: redbot's httplint brings sniffpy, which installs a top-level
#     package named `tests` that would shadow this project's tests/ in .venv)
#     benchmarks/redbot.sh [text|text_verbose]   # default: one line per note, with levels
#
# Copies examples/site to a temp folder and adds two files the sample site lacks, because
# its own files are all under the compression module's 1024-byte min_size:
#   big.txt            ~9 KiB of text: compressed on the fly (gzip/br)
#   pre.css, pre.css.gz  a stylesheet over 1 KiB and its precompressed sibling
# Starts `trioiis serve TEMP --bind 127.0.0.1:PORT` on a free loopback port, runs
# `redbot -o har URL` on each URL and prints every note as "LEVEL [CATEGORY] summary"
# (REDbot itself sends the Range, conditional (If-None-Match / If-Modified-Since) and
# Accept-Encoding subrequests; its CLI takes no request headers), then stops the server.
# Exits 0 even with warnings; the last line counts the URLs with a note at level BAD.
# PATHS="/ /notes.txt" overrides the URL paths. Bounded: the server gets 5 s to accept,
# each redbot run 60 s.
set -euo pipefail

cd "$(dirname "$0")/.."
FORMAT="${1:-}"
REDBOT=.venv-redbot/bin/redbot
if [ ! -x "$REDBOT" ]; then
    echo "REDbot is not installed: python3 -m venv .venv-redbot && .venv-redbot/bin/pip install redbot" >&2
    exit 2
fi

TMP="$(mktemp -d -t trioiis-redbot-XXXXXX)"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID"
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

cp -r examples/site "$TMP/site"
for i in $(seq 120); do
    echo "line $i: trioiis serves static files through the IIS integrated pipeline."
done >"$TMP/site/big.txt"
for i in $(seq 60); do
    echo ".rule-$i { color: #333; margin: 0 auto; padding: 1em; font-family: sans-serif; }"
done >"$TMP/site/pre.css"
gzip -9 -k -n "$TMP/site/pre.css"
touch -r "$TMP/site/pre.css" "$TMP/site/pre.css.gz"

PORT="$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
.venv/bin/trioiis serve "$TMP/site" --bind "127.0.0.1:$PORT" 2>"$TMP/server.log" &
SERVER_PID=$!
for _ in $(seq 50); do
    if .venv/bin/python -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1).close()" 2>/dev/null; then
        break
    fi
    sleep 0.1
done

BASE="http://127.0.0.1:$PORT"
echo "server: .venv/bin/trioiis serve TEMP/site --bind 127.0.0.1:$PORT (pid $SERVER_PID)"
echo "redbot: $($REDBOT --help >/dev/null && .venv/bin/python -c 'import importlib.metadata as m; print(m.version("redbot"), "httplint", m.version("httplint"))')"
# Per URL: the status line, then every note REDbot made as "LEVEL [CATEGORY] summary"
# (from its HAR output, which carries the levels: GOOD, INFO, WARN, BAD); with an argument
# (text or text_verbose) its own report instead.
cat >"$TMP/summarize.py" <<'PY'
import json
import sys

har = json.load(sys.stdin)


def show(notes, depth):
    for note in notes:
        print("  " * depth + f"{note['level']:4} [{note['category']}] {note['summary']}")
        show(note.get("subnotes", []), depth + 1)


for entry in har["log"]["entries"]:
    print(f"  {entry['response']['status']} {entry['response']['statusText']}")
    show(entry.get("_red_messages", []), 1)
PY
summarize() { .venv/bin/python "$TMP/summarize.py"; }
BAD=0
for path in ${PATHS:-/ /notes.txt /style.css /about/ /about /big.txt /pre.css}; do
    echo
    if [ -n "$FORMAT" ]; then
        echo "================ $REDBOT -o $FORMAT $BASE$path"
        timeout 60 "$REDBOT" -o "$FORMAT" "$BASE$path" || echo "(redbot exited with status $?)"
    else
        echo "================ $REDBOT -o har $BASE$path"
        timeout 60 "$REDBOT" -o har "$BASE$path" >"$TMP/out.har" || echo "(redbot exited with status $?)"
        summarize <"$TMP/out.har" | tee "$TMP/summary.txt"
        if grep -q "^ *BAD " "$TMP/summary.txt"; then BAD=$((BAD + 1)); fi
    fi
done
echo
echo "URLs with notes at level BAD: $BAD"
