#!/usr/bin/env node
// Minimal echo server for the wsbeat benchmark (bench/echo.lua).
//
//   node bench/echo-server.js [--port N]
//
// Uses the "ws" package installed in spec/fixtures/node_modules, with
// permessage-deflate off and no logging, so that the server costs as little
// as possible. Every message is sent back with the same type (text/binary).
// Prints "PORT <n>" on stdout once listening; exits on SIGTERM/SIGINT.
'use strict';

const path = require('path');
const http = require('http');

let WebSocketServer;
try {
  ({ WebSocketServer } = require(path.join(__dirname, '..', 'spec', 'fixtures', 'node_modules', 'ws')));
} catch (err) {
  process.stderr.write('echo-server.js: cannot load "ws" (run "npm install" in spec/fixtures): ' +
    err.message + '\n');
  process.exit(1);
}

let port = 0;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--port' && i + 1 < argv.length) port = parseInt(argv[++i], 10);
  else {
    process.stderr.write('usage: node echo-server.js [--port N]\n');
    process.exit(2);
  }
}

const server = http.createServer((req, res) => {
  res.writeHead(426);
  res.end();
});
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });

wss.on('connection', (sock) => {
  // Small messages: disable Nagle so each echo leaves at once.
  if (sock._socket && sock._socket.setNoDelay) sock._socket.setNoDelay(true);
  sock.on('message', (data, isBinary) => {
    sock.send(data, { binary: isBinary });
  });
  sock.on('error', () => {});
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write('PORT ' + server.address().port + '\n');
});

const stop = () => {
  for (const c of wss.clients) c.terminate();
  server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
