#!/usr/bin/env bash
# testssl.sh against a trioiis TLS binding on 127.0.0.1: protocols, cipher suites, known
# vulnerabilities (LUCKY13, BEAST, POODLE, ROBOT, ...), the server's preferences.
#
#     benchmarks/testssl.sh            # after `make test` (uses .venv)
#
# Installs the Debian package testssl.sh (apt-get update first) when it is missing, makes a
# throwaway CA and a certificate for 127.0.0.1 with trustme, starts
# `trioiis serve examples/site --bind 127.0.0.1:PORT --tls-cert ... --tls-key ...` on a free
# loopback port, runs `testssl.sh --quiet --color 0 --warnings batch` on it (bounded: 600 s)
# and prints its findings that are not OK/INFO, then the protocol and cipher sections, and
# stops the server. The findings about the certificate itself (a test CA nobody trusts, no
# OCSP, no CT) are expected and listed apart. The full log goes to $OUT (default: a temp
# file). Summary in benchmarks/RESULTS.md.
set -euo pipefail

cd "$(dirname "$0")/.."
PY=.venv/bin/python
if [ ! -x "$PY" ]; then
    echo "no .venv: run make test first" >&2
    exit 2
fi
if ! command -v testssl >/dev/null && ! command -v testssl.sh >/dev/null; then
    echo "installing the Debian package testssl.sh" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq testssl.sh >/dev/null
fi
TESTSSL="$(command -v testssl || command -v testssl.sh)"

TMP="$(mktemp -d -t trioiis-testssl-XXXXXX)"
OUT="${OUT:-$TMP/testssl.log}"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    [ "$OUT" = "$TMP/testssl.log" ] || rm -rf "$TMP"
}
trap cleanup EXIT

"$PY" - "$TMP" <<'PYEOF'
import sys
from pathlib import Path

import trustme

folder = Path(sys.argv[1])
issued = trustme.CA().issue_cert("127.0.0.1", "localhost")
issued.private_key_pem.write_to_path(str(folder / "key.pem"))
for i, blob in enumerate(issued.cert_chain_pems):
    blob.write_to_path(str(folder / "cert.pem"), append=i > 0)
PYEOF

PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
.venv/bin/trioiis serve examples/site --bind "127.0.0.1:$PORT" \
    --tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem" --log-level WARNING >"$TMP/server.out" 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do
    grep -q "^trioiis serving" "$TMP/server.out" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.out" >&2; exit 1; }
    sleep 0.1
done
grep -q "^trioiis serving" "$TMP/server.out" || { echo "server did not start" >&2; exit 1; }

echo "testssl.sh: $(dpkg-query -W -f='${Version}' testssl.sh 2>/dev/null || echo '?'), $(openssl version)"
echo "target: https://127.0.0.1:$PORT/ (trioiis $(.venv/bin/trioiis --version | cut -d' ' -f2))"
timeout 600 "$TESTSSL" --quiet --color 0 --warnings batch --sneaky --ip one \
    "127.0.0.1:$PORT" >"$OUT" 2>&1 || true

echo
echo "== protocols and ciphers =="
sed -n '/Testing protocols/,/Testing server.s cipher preferences/p' "$OUT" | grep -v '^ *$' || true
echo
echo "== vulnerabilities =="
sed -n '/Testing vulnerabilities/,/Running client simulations/p' "$OUT" | grep -v '^ *$' || true
echo
echo "== findings flagged (not ok) =="
grep -E '(NOT ok|VULNERABLE|potentially|-- inconclusive|WARN)' "$OUT" || echo "(none)"
echo
echo "full log: $OUT"
