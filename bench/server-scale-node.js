#!/usr/bin/env node
// The node ws server of the server scale benchmark (bench/server-scale.sh):
// the same protocol as bench/server-scale.lua, without a heartbeat.
//
//   node --expose-gc bench/server-scale-node.js
//
// Listens on a free 127.0.0.1 port, prints "listening PORT", holds every
// connection. The connection to path "/ctl" is the control channel:
//   "gc"     global.gc() (with --expose-gc), answered "gc done"
//   "b SEQ"  one 64-byte text starting "B<SEQ> " to every client with
//            wss.clients.forEach(c => c.send(msg)); prints
//            "bcast SEQ T0 T1 COUNT" (T0/T1 around the loop)
//   "stats"  prints "stats open=.."
// Times: process.hrtime.bigint() (libuv's uv_hrtime, CLOCK_MONOTONIC on
// Linux) in microseconds, the clock of the load side. Uses the "ws" package
// of spec/fixtures/node_modules, permessage-deflate off.
'use strict';

const path = require('path');
const http = require('http');

let WebSocketServer;
try {
  ({ WebSocketServer } = require(path.join(__dirname, '..', 'spec', 'fixtures', 'node_modules', 'ws')));
} catch (err) {
  process.stderr.write('server-scale-node.js: cannot load "ws" (run "npm install" in spec/fixtures): ' +
    err.message + '\n');
  process.exit(1);
}

const us = () => (process.hrtime.bigint() / 1000n).toString();
const out = (line) => process.stdout.write(line + '\n');

const server = http.createServer((req, res) => { res.writeHead(426); res.end(); });
const wss = new WebSocketServer({ server, perMessageDeflate: false });
const PAD = 'x'.repeat(64);

wss.on('connection', (sock, req) => {
  sock.on('error', () => {});
  if (req.url !== '/ctl') return;
  sock.on('message', (data) => {
    const cmd = data.toString();
    if (cmd === 'gc') {
      if (global.gc) { global.gc(); global.gc(); }
      sock.send('gc done');
    } else if (/^b \d+$/.test(cmd)) {
      const seq = cmd.slice(2);
      const msg = ('B' + seq + ' ' + PAD).slice(0, 64);
      const t0 = us();
      let count = 0;
      wss.clients.forEach((c) => { c.send(msg); count++; });
      const t1 = us();
      out(`bcast ${seq} ${t0} ${t1} ${count}`);
    } else if (cmd === 'stats') {
      out(`stats open=${wss.clients.size}`);
    }
  });
});

server.listen(0, '127.0.0.1', () => {
  if (global.gc) { global.gc(); global.gc(); }
  out('listening ' + server.address().port);
});
server.on('error', (err) => {
  process.stderr.write('server-scale-node.js: ' + err.message + '\n');
  process.exit(1);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
