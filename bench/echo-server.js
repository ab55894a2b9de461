#!/usr/bin/env node
// Minimal echo server for the wsbeat benchmarks (bench/bench.sh SERVER=node,
// bench/server-bench.sh).
//
//   node bench/echo-server.js [--port N] [--tls-port N --cert PEM --key PEM]
//   node bench/echo-server.js PORT [CERT KEY]
//
// Uses the "ws" package installed in spec/fixtures/node_modules, with
// permessage-deflate off and no logging, so that the server costs as little
// as possible. Every message is sent back with the same type (text/binary).
// The first form prints "PORT <ws-port> [<wss-port>]" on stdout once
// listening. The second (server-bench.sh's) serves one port on 127.0.0.1,
// ws or, given CERT and KEY, wss only, and prints "listening <port>" (PORT 0:
// the kernel picks it). Both exit on SIGTERM/SIGINT.
'use strict';

const path = require('path');
const http = require('http');
const https = require('https');
const fs = require('fs');

let WebSocketServer;
try {
  ({ WebSocketServer } = require(path.join(__dirname, '..', 'spec', 'fixtures', 'node_modules', 'ws')));
} catch (err) {
  process.stderr.write('echo-server.js: cannot load "ws" (run "npm install" in spec/fixtures): ' +
    err.message + '\n');
  process.exit(1);
}

const opt = { port: 0, tlsPort: null, cert: null, key: null };
const argv = process.argv.slice(2);
// positional form: PORT [CERT KEY], one listener
opt.single = argv.length > 0 && !argv[0].startsWith('--');
if (opt.single) {
  if (argv.length !== 1 && argv.length !== 3) opt.bad = true;
  opt.port = parseInt(argv[0], 10);
  if (!/^\d+$/.test(argv[0]) || opt.port > 65535) opt.bad = true;
  if (argv.length === 3) [opt.cert, opt.key] = argv.slice(1);
}
for (let i = opt.single ? argv.length : 0; i < argv.length; i++) {
  const a = argv[i], v = argv[i + 1];
  if (v === undefined) opt.bad = true;
  else if (a === '--port') opt.port = parseInt(v, 10);
  else if (a === '--tls-port') opt.tlsPort = parseInt(v, 10);
  else if (a === '--cert') opt.cert = v;
  else if (a === '--key') opt.key = v;
  else opt.bad = true;
  i++;
}
if (opt.bad || (opt.tlsPort !== null && !(opt.cert && opt.key))) {
  process.stderr.write('usage: node echo-server.js [--port N] [--tls-port N --cert PEM --key PEM]\n' +
    '       node echo-server.js PORT [CERT KEY]\n');
  process.exit(2);
}

const reject = (req, res) => {
  res.writeHead(426);
  res.end();
};
const tlsServer = () => https.createServer({ cert: fs.readFileSync(opt.cert), key: fs.readFileSync(opt.key) }, reject);
let servers = [http.createServer(reject)];
if (opt.single && opt.cert)
  servers = [tlsServer()];
else if (opt.tlsPort !== null)
  servers.push(tlsServer());
const wsServers = servers.map((server) => {
  const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
  wss.on('connection', (sock) => {
    // Small messages: disable Nagle so each echo leaves at once.
    if (sock._socket && sock._socket.setNoDelay) sock._socket.setNoDelay(true);
    sock.on('message', (data, isBinary) => {
      sock.send(data, { binary: isBinary });
    });
    sock.on('error', () => {});
  });
  return wss;
});

let listening = 0;
const ports = [opt.port, opt.tlsPort];
servers.forEach((server, i) => server.listen(ports[i], '127.0.0.1', () => {
  if (opt.single)
    process.stdout.write('listening ' + server.address().port + '\n');
  else if (++listening === servers.length)
    process.stdout.write('PORT ' + servers.map((s) => s.address().port).join(' ') + '\n');
}));
servers.forEach((server) => server.on('error', (err) => {
  process.stderr.write('echo-server.js: ' + err.message + '\n');
  process.exit(1);
}));

const stop = () => {
  for (const wss of wsServers) for (const c of wss.clients) c.terminate();
  for (const server of servers) server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
