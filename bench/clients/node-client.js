#!/usr/bin/env node
// Echo-benchmark reference client: Node.js + the "ws" package (v8).
//
//   node bench/clients/node-client.js URL SIZE N K W [CAFILE]
//     URL   ws://HOST:PORT/PATH or wss://HOST:PORT/PATH (wss: the server
//           certificate is verified against CAFILE)
//     SIZE  message size in bytes; every message is a TEXT message of SIZE ASCII bytes
//     N     latency test: N round trips, one message in flight (0 = skip),
//           after a warm-up of min(200, N) round trips not counted
//     K     pipelined throughput test: K messages, at most W unanswered; the
//           clock runs from the first send to the K-th echo (0 = skip); if
//           N = 0 and K > 0, 2 warm-up round trips come first
//     W     max messages in flight while pipelining
//   Prints on success, then closes with code 1000 and exits 0:
//     RESULT client=node-ws size=SIZE p50_us=X p99_us=Y msg_s=Z
//   ("-" for a skipped test). Any failure (connect error, bad echo, early
//   close, 120 s overall timeout): a message on stderr, exit 1.
'use strict';

const path = require('path');
const fs = require('fs');

function fail(msg) {
  process.stderr.write(`node-client: ${msg}\n`);
  process.exit(1);
}

let WebSocket;
try {
  WebSocket = require(path.join(__dirname, '../../spec/fixtures/node_modules/ws'));
} catch (err) {
  fail(`cannot load "ws" (run "npm install" in spec/fixtures): ${err.message}`);
}

const argv = process.argv.slice(2);
const nat = (s) => (/^\d+$/.test(s) ? Number(s) : NaN);
const [URL_, SIZE, N, K, W] = [argv[0], nat(argv[1]), nat(argv[2]), nat(argv[3]), nat(argv[4])];
const CAFILE = argv[5];
if (argv.length < 5 || argv.length > 6 || !/^wss?:\/\//.test(URL_ || '') ||
    [SIZE, N, K, W].some(Number.isNaN) || (K > 0 && W < 1)) {
  fail('usage: node-client.js ws[s]://HOST:PORT/PATH SIZE N K W [CAFILE]');
}

const timer = setTimeout(() => fail('timed out after 120 s'), 120000);

// ASCII filler; the first TAGLEN bytes carry a decimal round-trip index so a
// stale or duplicated echo cannot pass for the expected one.
const TAGLEN = Math.min(SIZE, 10);
const TAGMOD = 10 ** TAGLEN;
const FILL = 'abcdefghijklmnopqrstuvwxyz0123456789';
const msg = Buffer.alloc(SIZE, FILL, 'latin1');
// A Buffer is sent with binary: false as a TEXT frame; ws copies read-only
// Buffers while masking, so msg is never altered and can be re-tagged for the
// next round trip (by then the previous one has been echoed in full anyway).
const TEXT = { binary: false };

function tag(i) {
  i %= TAGMOD;
  for (let p = TAGLEN - 1; p >= 0; p--, i = Math.floor(i / 10)) msg[p] = 48 + (i % 10);
}

const opts = { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 };
if (URL_.startsWith('wss:') && CAFILE) {
  try {
    opts.ca = fs.readFileSync(CAFILE);
  } catch (err) {
    fail(`cannot read CA file: ${err.message}`);
  }
}

let ws;
try {
  ws = new WebSocket(URL_, opts);
} catch (err) {
  fail(err.message);
}
let result = null; // the RESULT line, set once both tests are done and we close
let onEcho = () => fail('unexpected message');
ws.on('message', (data, isBinary) => onEcho(data, isBinary));
ws.on('error', (err) => fail(err.message));
ws.on('close', (code, reason) => {
  if (!result) fail(`connection closed early (code ${code}${reason.length ? ' ' + reason : ''})`);
  if (code !== 1000) fail(`close handshake ended with code ${code}`);
  clearTimeout(timer);
  process.stdout.write(result);
});

let seq = 0; // running index across warm-up and test: consecutive tags always differ

// count round trips, one in flight; lat (if given) gets each one in microseconds
function roundTrips(count, lat, done) {
  if (count === 0) return done();
  let i = 0;
  let t0;
  const next = () => {
    tag(seq++);
    t0 = process.hrtime.bigint();
    ws.send(msg, TEXT);
  };
  onEcho = (data, isBinary) => {
    const t1 = process.hrtime.bigint();
    if (data.length !== SIZE) fail(`latency echo of ${data.length} bytes, expected ${SIZE}`);
    if (isBinary || !data.equals(msg)) fail(`latency echo ${i + 1} does not match what was sent`);
    if (lat) lat[i] = Number(t1 - t0) / 1000;
    if (++i === count) done();
    else next();
  };
  next();
}

function pipeline(done) {
  let sent = 0;
  let received = 0;
  let t0;
  onEcho = (data, isBinary) => {
    if (data.length !== SIZE || isBinary) {
      fail(`pipelined echo of ${data.length} bytes (${isBinary ? 'binary' : 'text'}), expected ${SIZE} text`);
    }
    if (++received === K) return done(Number(process.hrtime.bigint() - t0) / 1e9);
    // refill from here so W stay in flight without any polling
    if (sent < K) {
      sent++;
      ws.send(msg, TEXT);
    }
  };
  tag(seq++);
  t0 = process.hrtime.bigint();
  for (const first = Math.min(W, K); sent < first; sent++) ws.send(msg, TEXT);
}

function pct(sorted, p) {
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)];
}

ws.on('open', () => {
  const lat = N > 0 ? new Float64Array(N) : null;
  let p50 = '-';
  let p99 = '-';
  let rate = '-';
  const finish = () => {
    onEcho = () => fail('echo after the last one expected');
    result = `RESULT client=node-ws size=${SIZE} p50_us=${p50} p99_us=${p99} msg_s=${rate}\n`;
    ws.close(1000);
  };
  const throughput = () => {
    if (K === 0) return finish();
    pipeline((elapsed) => {
      rate = (K / elapsed).toFixed(0);
      finish();
    });
  };
  roundTrips(N > 0 ? Math.min(200, N) : K > 0 ? 2 : 0, null, () =>
    roundTrips(N, lat, () => {
      if (lat) {
        lat.sort();
        p50 = pct(lat, 0.5).toFixed(1);
        p99 = pct(lat, 0.99).toFixed(1);
      }
      throughput();
    }));
});
