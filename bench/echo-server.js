#!/usr/bin/env node
// Minimal echo server for the wsbeat benchmark (bench/bench.sh SERVER=node).
//
//   node bench/echo-server.js [--port N] [--tls-port N --cert PEM --key PEM]
//
// Uses the "ws" package installed in spec/fixtures/node_modules, with
// permessage-deflate off and no logging, so that the server costs as little
// as possible. Every message is sent back with the same type (text/binary).
// Prints "PORT <ws-port> [<wss-port>]" on stdout once listening; exits on
// SIGTERM/SIGINT.
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
for (let i = 0; i < argv.length; i++) {
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
  process.stderr.write('usage: node echo-server.js [--port N] [--tls-port N --cert PEM --key PEM]\n');
  process.exit(2);
}

const reject = (req, res) => {
  res.writeHead(426);
  res.end();
};
const servers = [http.createServer(reject)];
if (opt.tlsPort !== null)
  servers.push(https.createServer({ cert: fs.readFileSync(opt.cert), key: fs.readFileSync(opt.key) }, reject));
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
  if (++listening === servers.length)
    process.stdout.write('PORT ' + servers.map((s) => s.address().port).join(' ') + '\n');
}));

const stop = () => {
  for (const wss of wsServers) for (const c of wss.clients) c.terminate();
  for (const server of servers) server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
