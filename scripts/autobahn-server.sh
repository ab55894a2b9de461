#!/bin/sh
# Run the Autobahn|Testsuite fuzzingclient locally against an echo server
# (server cases) over ws:// and/or wss://, and print a summary per case group.
#
#   AUTOBAHN_DIR=/path/to/autobahn-testsuite sh scripts/autobahn-server.sh [ws|wss|both] [CASES...]
#
#   CASES are fuzzingclient case patterns (default: the groups that
#   docs/CONFORMANCE.md reports: 1.* 2.* 3.* 4.* 5.* 6.* 7.* 9.* 10.* 12.* 13.*),
#   e.g. `sh scripts/autobahn-server.sh ws '9.*'` or
#   `SERVER=python sh scripts/autobahn-server.sh both 1.1.1`.
#
# This is the server-side twin of scripts/autobahn.sh (which runs the
# fuzzingserver against wsbeat's client); getting the suite is the same:
# a Python 3 port of Autobahn|Testsuite, NOT part of this repository,
#   git clone https://github.com/ricardo-valero/autobahn-testsuite /work/autobahn
#   AUTOBAHN_DIR=/work/autobahn
# running on Debian's packages, no pip/uv needed:
#   apt-get install python3-autobahn python3-twisted python3-openssl \
#                   python3-service-identity python3-jinja2
# and Debian's interpreter (PYTHON, default /usr/bin/python3), with
# PYTHONPATH=$AUTOBAHN_DIR/autobahntestsuite.
#
# The server under test is started here, on a free 127.0.0.1 port, once per
# scheme, and stopped (SIGTERM, then SIGKILL after 5 s) when the scheme is
# done or the script exits, also on failure. Both servers take
#   --port PORT [--cert CERT --key KEY] [--compression]
# print "listening PORT" on stdout (the port is taken from that line) once they
# listen, echo every message with its kind, and run until SIGTERM:
#   SERVER=wsbeat   (default) lua5.4 scripts/echo-server.lua, from the checkout
#                   root with LUA_PATH=./lua, LUA_CPATH=./build (as make demo);
#                   `make` is run first if build/wsbeat/core.so is missing
#   SERVER=python   scripts/py-echo-server.py (python3-websockets): the
#                   reference row, and what validated this runner
# For wss, a throw-away CA and a server certificate (SAN localhost, 127.0.0.1)
# come from spec/fixtures/gencerts.sh in a temp dir removed on exit.
#
# Port quirks, worked around at run time by scripts/autobahn-launch.py (the
# checkout is not modified):
#  - bytes fields in the per-case report are turned into str before the JSON
#    dump (json.dumps fails on them otherwise; same fix as autobahn.sh).
#  - TLS: without a "hostname" in the server entry the fuzzingclient uses
#    twisted's ClientContextFactory, which verifies nothing (any certificate,
#    any name). With one it uses optionsForClientTLS(hostname), i.e. SNI and
#    verification against the system roots, which our throw-away CA is not in.
#    The spec here gives "hostname": "localhost" and the launcher hands
#    optionsForClientTLS the test CA as trustRoot, so wss://127.0.0.1:PORT is
#    verified for real (a server with the wrong certificate fails the run).
#  - when a connection fails (the server died in a case) the fuzzingclient
#    does not go on: it writes the report of the cases so far and stops. This
#    script then notes the last case run in OUT/<scheme>/crashes.txt, starts
#    the server again and runs the cases that are left; the partial index
#    files (reports/index.N.json) are merged into reports/index.json. The
#    HTML index (reports/index.html) shows the last partial run only; the
#    per-case JSON/HTML files are all there.
#  - a case id without '*' that the suite does not know is an error here (the
#    port would die on it with a KeyError after starting).
#
# Timing (2-core Debian 12 machine, loopback, SERVER=wsbeat): groups 1-7, 9,
# 10 (301 cases) about 20-30 s per scheme. Groups 12 and 13
# (permessage-deflate) need AUTOBAHN_COMPRESSION=1 (without it they come out
# UNIMPLEMENTED) and take about 16 minutes per scheme, bound by the suite's
# Python client; with SERVER=python most of an hour.
#
# Other environment (optional):
#   OUT             where reports go (default ${TMPDIR:-/tmp}/wsbeat-autobahn-server);
#                   per scheme OUT/ws and OUT/wss, each with reports/ (index.json,
#                   the per-case JSON/HTML), selected.txt (the case ids),
#                   crashes.txt, client.log, server.log
#   PYTHON          python with Debian's autobahn/twisted (/usr/bin/python3)
#   LUA             Lua interpreter for SERVER=wsbeat (lua5.4)
#   AUTOBAHN_COMPRESSION=1  start the server with --compression
#                   (permessage-deflate, for 12.x/13.x; without it those cases
#                   come out UNIMPLEMENTED)
#   EXCLUDE         space-separated case patterns to exclude
#
# Exit status: 0 when every selected case ran and none is FAILED, 1 otherwise
# (also when the server died: it is restarted after the case it died in, and
# the case ids are listed in OUT/<scheme>/crashes.txt), 2 on a usage error.
set -eu

cd "$(dirname "$0")/.."

: "${AUTOBAHN_DIR:?set AUTOBAHN_DIR to a checkout of autobahn-testsuite (see the header of this script)}"
SUITE="$AUTOBAHN_DIR/autobahntestsuite"
[ -f "$SUITE/autobahntestsuite/fuzzing.py" ] || {
    echo "autobahn-server.sh: $SUITE/autobahntestsuite/fuzzing.py not found" >&2; exit 2; }

PYTHON=${PYTHON:-/usr/bin/python3}
LUA=${LUA:-lua5.4}
OUT=${OUT:-${TMPDIR:-/tmp}/wsbeat-autobahn-server}
EXCLUDE=${EXCLUDE:-}
SERVER=${SERVER:-wsbeat}
COMPRESSION=${AUTOBAHN_COMPRESSION:-0}

MODE=${1:-both}
[ $# -gt 0 ] && shift
case $MODE in ws|wss|both) ;; *) echo "usage: autobahn-server.sh [ws|wss|both] [CASES...]" >&2; exit 2;; esac
if [ $# -gt 0 ]; then CASES="$*"; else CASES='1.* 2.* 3.* 4.* 5.* 6.* 7.* 9.* 10.* 12.* 13.*'; fi

case $SERVER in
    wsbeat)
        [ -f scripts/echo-server.lua ] || {
            echo "autobahn-server.sh: scripts/echo-server.lua not found (SERVER=python runs the reference server)" >&2; exit 2; }
        [ -f build/wsbeat/core.so ] || make >/dev/null
        AGENT=wsbeat;;
    python)
        AGENT=python-websockets;;
    *) echo "autobahn-server.sh: SERVER must be wsbeat or python" >&2; exit 2;;
esac
if [ "$COMPRESSION" = 1 ]; then
    AGENT="$AGENT-deflate"
fi

json_list() { # words -> JSON list of strings (set -f: patterns stay literal)
    set -f
    sep=""; printf '['
    for w in $1; do printf '%s"%s"' "$sep" "$w"; sep=", "; done
    printf ']'
    set +f
}

SERVER_PID=""
CERTS=""
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill "$SERVER_PID" 2>/dev/null || true
    i=0
    while kill -0 "$SERVER_PID" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
# shellcheck disable=SC2317 # called from the traps
cleanup() {
    stop_server
    if [ -n "$CERTS" ]; then rm -rf "$CERTS"; fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

# The launcher: wstest with the run-time fixes (scripts/autobahn-launch.py).
LAUNCHER="$PWD/scripts/autobahn-launch.py"

# resolve | merge | summarize, on the suite's case list and the reports.
tool() {
    PYTHONPATH="$SUITE" "$PYTHON" - "$@" <<'EOF'
import glob, json, os, sys

def resolve(cases, exclude):
    from autobahntestsuite.case import Cases, CaseCategories, CaseSubCategories, CaseSetname, CaseBasename
    from autobahntestsuite.caseset import CaseSet
    cs = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories)
    unknown = [c for c in cases.split() + exclude.split()
               if "*" not in c and c not in cs.CasesIndices]
    if unknown:
        sys.exit("autobahn-server.sh: unknown case id(s): " + " ".join(unknown))
    for c in cs.parseSpecCases({"cases": cases.split(), "exclude-cases": exclude.split()}):
        print(c)

def merge(d):
    merged = {}
    def num(p): return int(p.rsplit(".", 2)[-2])
    for p in sorted(glob.glob(os.path.join(d, "reports", "index.*.json")), key=num):
        for agent, res in json.load(open(p)).items():
            merged.setdefault(agent, {}).update(res)
    with open(os.path.join(d, "reports", "index.json"), "w") as f:
        json.dump(merged, f, sort_keys=True, indent=3, separators=(",", ": "))
    ran = set(c for res in merged.values() for c in res)
    for c in open(os.path.join(d, "selected.txt")).read().split():
        if c not in ran:
            print(c)

def summarize(dirs):
    groups = ["1", "2", "3", "4", "5", "6", "7", "9", "10", "12", "13"]
    cols = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
    def key(c): return [int(x) for x in c.split(".")]
    bad = 0; final = []
    for d in dirs:
        name = os.path.basename(d)
        selected = open(os.path.join(d, "selected.txt")).read().split() \
            if os.path.exists(os.path.join(d, "selected.txt")) else []
        idx = os.path.join(d, "reports", "index.json")
        res = {}
        if os.path.exists(idx):
            for r in json.load(open(idx)).values():
                res.update(r)
        elapsed = open(os.path.join(d, "elapsed.txt")).read().strip() \
            if os.path.exists(os.path.join(d, "elapsed.txt")) else "?"
        print("\n%s (%d of %d cases ran, %s s)" % (name, len(res), len(selected), elapsed))
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
        crashed = open(crashes).read().split("\n") if os.path.exists(crashes) else []
        crashed = [c for c in crashed if c.strip()]
        if crashed:
            print("  server died in: " + "; ".join(crashed))
            bad = 1
        failed = 0
        for c in sorted(res, key=key):
            r = res[c]
            if r["behavior"] != "OK" or r["behaviorClose"] != "OK":
                print("  %-8s behavior=%s behaviorClose=%s remoteCloseCode=%s" %
                      (c, r["behavior"], r["behaviorClose"], r["remoteCloseCode"]))
            if r["behavior"] == "FAILED":
                failed += 1
        missing = [c for c in selected if c not in res]
        if missing:
            print("  not run (%d): %s" % (len(missing), " ".join(missing[:40]) +
                                          (" ..." if len(missing) > 40 else "")))
        if failed or missing or not selected:
            bad = 1
        final.append("%s %d/%d ran, %d FAILED%s" % (name, len(res), len(selected), failed,
                     ", server died %d time(s)" % len(crashed) if crashed else ""))
    print("\nautobahn-server: %s: %s: %s" % (os.environ.get("AGENT", "?"),
          "PASS" if not bad else "FAIL", "; ".join(final)))
    sys.exit(bad)

cmd = sys.argv[1]
if cmd == "resolve": resolve(sys.argv[2], sys.argv[3])
elif cmd == "merge": merge(sys.argv[2])
elif cmd == "summarize": summarize(sys.argv[2:])
EOF
}

start_server() { # scheme dir -> SERVER_PID, SERVER_PORT
    free=$("$PYTHON" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1]); s.close()")
    set -- "$1" "$2" --port "$free"
    if [ "$1" = wss ]; then set -- "$@" --cert "$CERTS/server.pem" --key "$CERTS/server.key"; fi
    if [ "$COMPRESSION" = 1 ]; then set -- "$@" --compression; fi
    d=$2; shift 2
    echo "== $(date '+%H:%M:%S') starting $SERVER server: $*" >>"$d/server.log"
    : >"$d/server.out"
    if [ "$SERVER" = python ]; then
        "$PYTHON" scripts/py-echo-server.py "$@" >"$d/server.out" 2>>"$d/server.log" &
    else
        LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./build/?.so;;" \
            "$LUA" scripts/echo-server.lua "$@" >"$d/server.out" 2>>"$d/server.log" &
    fi
    SERVER_PID=$!
    i=0; SERVER_PORT=""
    while [ $i -lt 200 ]; do
        SERVER_PORT=$(sed -n 's/^listening \([0-9][0-9]*\).*$/\1/p' "$d/server.out" | head -n 1)
        [ -n "$SERVER_PORT" ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1; i=$((i + 1))
    done
    echo "autobahn-server.sh: the $SERVER server did not print 'listening PORT' within 20 s, see $d/server.log" >&2
    tail -20 "$d/server.log" >&2
    stop_server
    return 1
}

run_scheme() { # scheme
    scheme=$1; dir="$OUT/$scheme"
    rm -rf "$dir"; mkdir -p "$dir/reports"
    : >"$dir/client.log"; : >"$dir/server.log"; : >"$dir/crashes.txt"
    printf '%s\n' "$SELECTED" >"$dir/selected.txt"
    ca=""; host_json=""
    if [ "$scheme" = wss ]; then
        if [ -z "$CERTS" ]; then
            CERTS=$(mktemp -d "${TMPDIR:-/tmp}/wsbeat-autobahn-certs.XXXXXX")
            sh spec/fixtures/gencerts.sh "$CERTS" || return 1
        fi
        ca="$CERTS/ca.pem"
        host_json='"hostname": "localhost",'
    fi
    start=$(date +%s)
    echo "== $scheme: $SERVER echo server, cases: $CASES ($(wc -l <"$dir/selected.txt") ids)" >&2
    rc=0; n=0
    cp "$dir/selected.txt" "$dir/left.txt"
    while [ -s "$dir/left.txt" ]; do
        n=$((n + 1))
        start_server "$scheme" "$dir" || { rc=1; break; }
        cat >"$dir/fuzzingclient.json" <<EOF
{
   "outdir": "$dir/reports",
   "options": {"failByDrop": false},
   "servers": [{"agent": "$AGENT", "url": "$scheme://127.0.0.1:$SERVER_PORT", $host_json "options": {}}],
   "cases": $(json_list "$(cat "$dir/left.txt")"),
   "exclude-cases": [],
   "exclude-agent-cases": {}
}
EOF
        echo "== $(date '+%H:%M:%S') run $n: $scheme://127.0.0.1:$SERVER_PORT, $(wc -l <"$dir/left.txt") cases" >>"$dir/client.log"
        rm -f "$dir/reports/index.json"
        crc=0
        (cd "$dir" && PYTHONPATH="$SUITE" WSBEAT_AUTOBAHN_CA="$ca" exec "$PYTHON" "$LAUNCHER" \
            -m fuzzingclient -s "$dir/fuzzingclient.json" >>"$dir/client.log" 2>&1) || crc=$?
        died=""
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            src=0; wait "$SERVER_PID" || src=$?
            SERVER_PID=""
            died="exit $src"
        fi
        stop_server
        before=$(wc -l <"$dir/left.txt")
        if [ -f "$dir/reports/index.json" ]; then mv "$dir/reports/index.json" "$dir/reports/index.$n.json"; fi
        tool merge "$dir" >"$dir/left.txt"
        after=$(wc -l <"$dir/left.txt")
        if [ $crc -ne 0 ]; then
            echo "autobahn-server.sh: fuzzingclient exited $crc, see $dir/client.log" >&2
            tail -5 "$dir/client.log" >&2
            rc=1; break
        fi
        last=$(sed -n 's/^Running test case ID \([0-9.]*\) .*/\1/p' "$dir/client.log" | tail -n 1)
        if [ -n "$died" ]; then
            echo "${last:-?} ($SERVER server $died)" >>"$dir/crashes.txt"
            echo "autobahn-server.sh: $scheme: server died ($died) in case ${last:-?}" >&2
            rc=1
        fi
        [ "$after" -eq 0 ] && break
        if [ -n "$died" ]; then
            echo "autobahn-server.sh: $scheme: restarting the server for the $after cases left" >&2
        else
            echo "autobahn-server.sh: $scheme: the fuzzingclient stopped after case ${last:-?} with $after cases left (connection failed?); restarting the server" >&2
            echo "${last:-?} (connection failed, server still running)" >>"$dir/crashes.txt"
        fi
        rc=1
        if [ "$after" -ge "$before" ]; then
            echo "autobahn-server.sh: $scheme: no case ran in run $n; giving up" >&2
            break
        fi
    done
    rm -f "$dir/left.txt"
    echo $(( $(date +%s) - start )) >"$dir/elapsed.txt"
    return $rc
}

SELECTED=$(tool resolve "$CASES" "$EXCLUDE") || exit 2
[ -n "$SELECTED" ] || { echo "autobahn-server.sh: no case matches: $CASES (EXCLUDE: $EXCLUDE)" >&2; exit 2; }

status=0
dirs=""
if [ "$MODE" = ws ] || [ "$MODE" = both ]; then
    run_scheme ws || status=1
    dirs="$dirs $OUT/ws"
fi
if [ "$MODE" = wss ] || [ "$MODE" = both ]; then
    run_scheme wss || status=1
    dirs="$dirs $OUT/wss"
fi
# shellcheck disable=SC2086
AGENT=$AGENT tool summarize $dirs || status=1
exit $status
