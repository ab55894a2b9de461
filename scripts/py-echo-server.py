#!/usr/bin/python3
"""Echo server on python3-websockets: the reference server for
scripts/autobahn-server.sh (SERVER=python).

    python3 scripts/py-echo-server.py --port PORT [--cert CERT --key KEY] [--compression]

Listens on 127.0.0.1:PORT (PORT 0: a free port), prints "listening PORT" on
stdout once it listens, echoes every message with its kind (text as text,
binary as binary) and runs until SIGTERM or SIGINT. Same command line and
same "listening" line as scripts/echo-server.lua, so the runner can start
either. Messages up to 64 MiB (the 9.x cases send 16 MiB); permessage-deflate
only with --compression. Needs Debian's python3-websockets (10.x).
"""
import argparse
import asyncio
import signal
import ssl
import sys

import websockets


async def echo(ws, _path=None):
    try:
        async for message in ws:
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--compression", action="store_true")
    args = ap.parse_args()
    if bool(args.cert) != bool(args.key):
        ap.error("--cert and --key go together")

    tls = None
    if args.cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.cert, args.key)

    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(
            sig, lambda: stop.done() or stop.set_result(None))

    async with websockets.serve(
            echo, "127.0.0.1", args.port, ssl=tls,
            compression="deflate" if args.compression else None,
            max_size=64 * 1024 * 1024, max_queue=None,
            ping_interval=None, close_timeout=5) as server:
        port = server.sockets[0].getsockname()[1]
        print("listening %d" % port, flush=True)
        await stop


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    sys.exit(0)
