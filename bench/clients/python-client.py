#!/usr/bin/python3
"""Echo-benchmark reference client: Python asyncio + websockets (Debian 10.4).

  /usr/bin/python3 bench/clients/python-client.py URL SIZE N K W [CAFILE]
    URL   ws://HOST:PORT/PATH or wss://HOST:PORT/PATH (wss: the server
          certificate is verified against CAFILE)
    SIZE  message size in bytes; every message is a TEXT message of SIZE ASCII bytes
    N     latency test: N round trips, one message in flight (0 = skip),
          after a warm-up of min(200, N) round trips not counted
    K     pipelined throughput test: K messages, at most W unanswered; the
          clock runs from the first send to the K-th echo (0 = skip); if
          N = 0 and K > 0, 2 warm-up round trips come first
    W     max messages in flight while pipelining
  Prints on success, then closes with code 1000 and exits 0:
    RESULT client=python-websockets size=SIZE p50_us=X p99_us=Y msg_s=Z
  ("-" for a skipped test). Any failure (connect error, bad echo, early
  close, 120 s overall timeout): a message on stderr, exit 1.

Run it with /usr/bin/python3: Debian's python3-websockets lives there.
"""
import asyncio
import math
import ssl
import sys
import time

import websockets

TIMEOUT = 120
FILL = "abcdefghijklmnopqrstuvwxyz0123456789"


class Failure(Exception):
    pass


def usage():
    raise Failure("usage: python-client.py ws[s]://HOST:PORT/PATH SIZE N K W [CAFILE]")


def pct(sorted_, p):
    return sorted_[max(0, math.ceil(p * len(sorted_)) - 1)]


async def bench(url, size, n, k, w, cafile):
    base = (FILL * (size // len(FILL) + 1))[:size]
    # the first TAGLEN characters carry a decimal round-trip index so a stale
    # or duplicated echo cannot pass for the expected one
    taglen = min(size, 10)
    tagmod = 10 ** taglen
    rest = base[taglen:]
    seq = 0  # running across warm-up and test: consecutive tags always differ

    sslctx = ssl.create_default_context(cafile=cafile) if url.startswith("wss:") else None
    try:
        ws = await websockets.connect(url, ssl=sslctx, compression=None, max_size=None,
                                      ping_interval=None)
    except asyncio.TimeoutError:
        raise Failure("timed out opening the connection") from None
    try:
        async def round_trips(count, lat):
            nonlocal seq
            send, recv, now = ws.send, ws.recv, time.perf_counter
            for i in range(count):
                msg = f"{seq % tagmod:0{taglen}d}"[:taglen] + rest
                seq += 1
                t0 = now()
                await send(msg)
                echo = await recv()
                t1 = now()
                if echo != msg:
                    if len(echo) != size:
                        raise Failure(f"latency echo of {len(echo)} bytes, expected {size}")
                    raise Failure(f"latency echo {i + 1} does not match what was sent")
                if lat is not None:
                    lat.append((t1 - t0) * 1e6)

        p50 = p99 = rate = "-"
        await round_trips(min(200, n) if n > 0 else 2 if k > 0 else 0, None)
        if n > 0:
            lat = []
            await round_trips(n, lat)
            lat.sort()
            p50, p99 = f"{pct(lat, 0.5):.1f}", f"{pct(lat, 0.99):.1f}"

        if k > 0:
            # the receiver releases one slot per echo, so the sender never
            # has more than w unanswered
            slots = asyncio.Semaphore(w)
            t0 = None

            async def sender():
                nonlocal t0
                send, acquire = ws.send, slots.acquire
                t0 = time.perf_counter()
                for _ in range(k):
                    await acquire()
                    await send(base)

            task = asyncio.create_task(sender())
            try:
                recv, release = ws.recv, slots.release
                for _ in range(k):
                    echo = await recv()
                    if len(echo) != size or not isinstance(echo, str):
                        raise Failure(f"pipelined echo of {len(echo)} bytes "
                                      f"({type(echo).__name__}), expected {size} text")
                    release()
                rate = f"{k / (time.perf_counter() - t0):.0f}"
                await task  # surfaces a send error, if any
            finally:
                task.cancel()
    except BaseException as e:
        # no closing handshake on failure (nor on timeout, which cancels us):
        # drop the TCP connection so that shutdown does not wait for it
        ws.transport.abort()
        if isinstance(e, websockets.ConnectionClosed):
            raise Failure(f"connection closed early ({e})") from None
        raise
    await ws.close(1000)
    if ws.close_code != 1000:
        raise Failure(f"close handshake ended with code {ws.close_code}")
    return f"RESULT client=python-websockets size={size} p50_us={p50} p99_us={p99} msg_s={rate}"


def main(argv):
    try:
        if not 5 <= len(argv) <= 6 or not argv[0].startswith(("ws://", "wss://")):
            usage()
        if not all(a.isdigit() for a in argv[1:5]):
            usage()
        size, n, k, w = map(int, argv[1:5])
        if k > 0 and w < 1:
            usage()
        line = asyncio.run(asyncio.wait_for(
            bench(argv[0], size, n, k, w, argv[5] if len(argv) > 5 else None), TIMEOUT))
    except asyncio.TimeoutError:
        print(f"python-client: timed out after {TIMEOUT} s", file=sys.stderr)
        return 1
    except Failure as e:
        print(f"python-client: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # connect errors, TLS errors, HTTP rejections ...
        print(f"python-client: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
