#!/bin/sh
# Run the Autobahn|Testsuite fuzzingserver locally against wsbeat (client
# cases) over ws:// and/or wss://, and print a summary per case group.
#
#   AUTOBAHN_DIR=/path/to/autobahn-testsuite sh scripts/autobahn.sh [ws|wss|both] [CASES...]
#
#   CASES are fuzzingserver case patterns (default: the groups that
#   docs/CONFORMANCE.md reports: 1.* 2.* 3.* 4.* 5.* 6.* 7.* 9.* 10.* 12.* 13.*),
#   e.g. `sh scripts/autobahn.sh ws '9.*'` or `sh scripts/autobahn.sh both 1.1.1`.
#
# Getting the suite (it is NOT part of this repository and must not be copied
# into it): a Python 3 port of Autobahn|Testsuite,
#   git clone https://github.com/ricardo-valero/autobahn-testsuite /work/autobahn
#   AUTOBAHN_DIR=/work/autobahn
# It runs on Debian's packages, no pip/uv needed:
#   apt-get install python3-autobahn python3-twisted python3-openssl \
#                   python3-service-identity python3-jinja2
# and Debian's interpreter (PYTHON, default /usr/bin/python3), with
# PYTHONPATH=$AUTOBAHN_DIR/autobahntestsuite.
#
# Two fixes the port needs are applied at run time by scripts/autobahn-launch.py
# (the checkout is not modified): the fuzzingserver listens on 127.0.0.1 only
# (it would bind every interface), and bytes fields in the per-case report are
# turned into str before the JSON dump (json.dumps fails on them otherwise).
#
# Other environment (optional):
#   OUT             where reports go (default ${TMPDIR:-/tmp}/wsbeat-autobahn); per scheme
#                   OUT/ws and OUT/wss, each with index.json, the per-case
#                   JSON/HTML and driver.log / server.log
#   PORT            fuzzingserver port (default 9001; the wss run uses PORT+1)
#   PYTHON          python with Debian's autobahn/twisted (/usr/bin/python3)
#   AUTOBAHN_CASE_TIMEOUT, AUTOBAHN_COMPRESSION, AUTOBAHN_AGENT: see
#                   scripts/autobahn-client.lua
#   EXCLUDE         space-separated case patterns to exclude
#
# Exit status: 0 when every selected case ran and none is FAILED, 1 otherwise
# (also when the driver crashed: it is restarted after the case that killed
# it, and the case ids are listed in OUT/<scheme>/crashes.txt).
set -eu

cd "$(dirname "$0")/.."

: "${AUTOBAHN_DIR:?set AUTOBAHN_DIR to a checkout of autobahn-testsuite (see the header of this script)}"
SUITE="$AUTOBAHN_DIR/autobahntestsuite"
[ -f "$SUITE/autobahntestsuite/fuzzing.py" ] || {
    echo "autobahn.sh: $SUITE/autobahntestsuite/fuzzing.py not found" >&2; exit 2; }

PYTHON=${PYTHON:-/usr/bin/python3}
LUA=${LUA:-lua5.4}
OUT=${OUT:-${TMPDIR:-/tmp}/wsbeat-autobahn}
PORT=${PORT:-9001}
EXCLUDE=${EXCLUDE:-}

MODE=${1:-both}
[ $# -gt 0 ] && shift
case $MODE in ws|wss|both) ;; *) echo "usage: autobahn.sh [ws|wss|both] [CASES...]" >&2; exit 2;; esac
if [ $# -gt 0 ]; then CASES="$*"; else CASES='1.* 2.* 3.* 4.* 5.* 6.* 7.* 9.* 10.* 12.* 13.*'; fi

[ -f build/wsbeat/core.so ] || make >/dev/null

json_list() { # words -> JSON list of strings (set -f: patterns stay literal)
    set -f
    sep=""; printf '['
    for w in $1; do printf '%s"%s"' "$sep" "$w"; sep=", "; done
    printf ']'
    set +f
}

SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

# The launcher: wstest with the run-time fixes (scripts/autobahn-launch.py).
LAUNCHER="$PWD/scripts/autobahn-launch.py"

wait_port() { # port pid
    i=0
    while [ $i -lt 100 ]; do
        if ! kill -0 "$2" 2>/dev/null; then return 1; fi
        if "$PYTHON" -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1).close()" "$1" 2>/dev/null; then return 0; fi
        sleep 0.2; i=$((i + 1))
    done
    return 1
}

run_scheme() { # scheme port
    scheme=$1; port=$2; dir="$OUT/$scheme"
    rm -rf "$dir"; mkdir -p "$dir/reports"
    tls_json=""; ca=""
    if [ "$scheme" = wss ]; then
        sh spec/fixtures/gencerts.sh "$dir/certs"
        tls_json="\"key\": \"$dir/certs/server.key\", \"cert\": \"$dir/certs/server.pem\","
        ca="$dir/certs/ca.pem"
    fi
    cat >"$dir/fuzzingserver.json" <<EOF
{
   "url": "$scheme://127.0.0.1:$port",
   $tls_json
   "options": {"failByDrop": false},
   "outdir": "$dir/reports",
   "cases": $(json_list "$CASES"),
   "exclude-cases": $(json_list "$EXCLUDE"),
   "exclude-agent-cases": {}
}
EOF
    echo "== $scheme: fuzzingserver on 127.0.0.1:$port, cases: $CASES" >&2
    (cd "$dir" && PYTHONPATH="$SUITE" exec "$PYTHON" "$LAUNCHER" \
        -m fuzzingserver -s "$dir/fuzzingserver.json" -u 0 >"$dir/server.log" 2>&1) &
    SERVER_PID=$!
    if ! wait_port "$port" "$SERVER_PID"; then
        echo "autobahn.sh: fuzzingserver did not start, see $dir/server.log" >&2
        tail -20 "$dir/server.log" >&2
        return 1
    fi
    # The driver runs the cases in order; if it dies (a crash in the client
    # library), note the case and start it again after that case: the
    # fuzzingserver keeps the results of the cases already run.
    rc=0; first=1; : >"$dir/driver.log"; : >"$dir/crashes.txt"
    while :; do
        drc=0
        AUTOBAHN_FIRST=$first LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./build/?.so;;" \
            "$LUA" scripts/autobahn-client.lua "$scheme://127.0.0.1:$port" $ca \
            >>"$dir/driver.log" 2>&1 || drc=$?
        [ $drc -eq 0 ] && break
        rc=1
        last=$(sed -n 's/^running case \([0-9]*\)\/[0-9]* \[\(.*\)\]$/\1 \2/p' "$dir/driver.log" | tail -n 1)
        if [ -z "$last" ]; then
            echo "autobahn.sh: driver failed (exit $drc) before any case" | tee -a "$dir/driver.log" >&2
            break
        fi
        echo "${last#* } exit $drc" >>"$dir/crashes.txt"
        echo "autobahn.sh: driver died (exit $drc) in case ${last#* }; going on after it" | tee -a "$dir/driver.log" >&2
        first=$(( ${last%% *} + 1 ))
    done
    grep -v '^running case' "$dir/driver.log" >&2 || true
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    return $rc
}

summarize() { # dir...
    "$PYTHON" - "$@" <<'EOF'
import json, os, sys
groups = ["1", "2", "3", "4", "5", "6", "7", "9", "10", "12", "13"]
cols = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
def key(c): return [int(x) for x in c.split(".")]
bad = 0
for d in sys.argv[1:]:
    idx = os.path.join(d, "reports", "index.json")
    if not os.path.exists(idx):
        print("%s: no index.json" % d); bad = 1; continue
    res = next(iter(json.load(open(idx)).values()))
    print("\n%s (%d cases)" % (os.path.basename(d), len(res)))
    print("| group | " + " | ".join(cols) + " | other |")
    print("|---|" + "---|" * (len(cols) + 1))
    for g in groups + sorted({c.split(".")[0] for c in res} - set(groups), key=int):
        cs = [c for c in res if c.split(".")[0] == g]
        if not cs: continue
        n = {k: 0 for k in cols}; other = 0
        for c in cs:
            b = res[c]["behavior"]
            if b in n: n[b] += 1
            else: other += 1
        print("| %s | " % g + " | ".join(str(n[k]) for k in cols) + " | %d |" % other)
    crashes = os.path.join(d, "crashes.txt")
    if os.path.exists(crashes) and open(crashes).read().strip():
        print("  driver crashed in: " + "; ".join(open(crashes).read().split("\n")).strip("; "))
    for c in sorted(res, key=key):
        r = res[c]
        if r["behavior"] != "OK" or r["behaviorClose"] != "OK":
            print("  %-8s behavior=%s behaviorClose=%s remoteCloseCode=%s" %
                  (c, r["behavior"], r["behaviorClose"], r["remoteCloseCode"]))
        if r["behavior"] == "FAILED":
            bad = 1
sys.exit(bad)
EOF
}

status=0
dirs=""
if [ "$MODE" = ws ] || [ "$MODE" = both ]; then
    run_scheme ws "$PORT" || status=1
    dirs="$dirs $OUT/ws"
fi
if [ "$MODE" = wss ] || [ "$MODE" = both ]; then
    run_scheme wss "$((PORT + 1))" || status=1
    dirs="$dirs $OUT/wss"
fi
# shellcheck disable=SC2086
summarize $dirs || status=1
exit $status
