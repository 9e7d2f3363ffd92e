#!/usr/bin/env node
// long-poll-floor.mjs — the least a Node HTTP server can do to answer a fan-out of Consul-style
// long polls, as a floor for bench/watch-fanout.bench.ts (target "floor"). Plain node:http, no
// framework, no state machine: it speaks just enough of /v1/kv for that benchmark.
//   node long-poll-floor.mjs   → prints "listening on http://127.0.0.1:PORT"
// GET /v1/kv/...?index=N (N = the current index) → held until the next PUT
// GET /v1/kv/... otherwise                       → 200 at once with X-Consul-Index
// PUT /v1/kv/...                                 → index + 1, "true"; then, on the next turn of the
//                                                  event loop, every held request gets one answer
//                                                  built once (the same header list and Buffer),
//                                                  with writeHead + end, as Konsul's answer hub does.
import { Buffer } from 'node:buffer';
import http from 'node:http';
import process from 'node:process';
import { setImmediate, setTimeout } from 'node:timers';

let index = 1;
let held = [];
let answer = build();

function build() {
  const body = Buffer.from(
    JSON.stringify([{ LockIndex: 0, Key: 'fan/k', Flags: 0, Value: Buffer.from(`v${index}-`.padEnd(100, 'x')).toString('base64'), CreateIndex: 2, ModifyIndex: index }]),
  );
  const head = [
    'x-consul-index', String(index),
    'x-consul-knownleader', 'true',
    'x-consul-lastcontact', '0',
    'x-consul-effective-consistency', 'leader',
    'content-type', 'application/json; charset=utf-8',
    'content-length', String(body.length),
  ];
  return { head, body };
}

const server = http.createServer((req, res) => {
  if (req.method === 'PUT') {
    req.resume();
    req.on('end', () => {
      index++;
      answer = build();
      res.writeHead(200, ['content-type', 'application/json', 'content-length', '4']);
      res.end('true');
      const waiting = held;
      held = [];
      setImmediate(() => {
        for (const r of waiting) {
          r.writeHead(200, answer.head);
          r.end(answer.body);
        }
      });
    });
    return;
  }
  const m = /[?&]index=(\d+)/.exec(req.url ?? '');
  if (m && Number(m[1]) === index) {
    held.push(res);
    return;
  }
  res.writeHead(200, answer.head);
  res.end(answer.body);
});
server.keepAliveTimeout = 72_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`long-poll floor listening on http://127.0.0.1:${server.address().port}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 500).unref();
  });
}
