// W3C Trace Context conformance of a service built from traceHttp() and traceOutgoing().
//
// The test service follows the contract of the W3C test suite (github.com/w3c/trace-context, test/):
// it receives a JSON list of `{ url, arguments }` and POSTs `arguments` as JSON to each url in turn.
// The harness below plays the suite's part: it sends the specification's example headers to the
// service and reads the trace headers of the callbacks the service makes to it. The expectations are
// those of the suite's test cases (strict level 2).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import Router from '@koa/router';
import express from 'express';
import Koa from 'koa';
import { traceHttp, traceOutgoing } from '../src/index.js';
import { closeServer, listen, parseTraceparent } from './support.js';

interface Instruction {
  url: string;
  arguments: Instruction[];
}

function readJson(req: IncomingMessage): Promise<Instruction[]> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      try {
        resolve(JSON.parse(body || '[]') as Instruction[]);
      } catch (err) {
        reject(err);
      }
    });
    req.on('error', reject);
  });
}

/** The service's outgoing call with global fetch (undici's diagnostics channels). */
async function postWithFetch(item: Instruction): Promise<void> {
  const res = await fetch(item.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(item.arguments) });
  await res.arrayBuffer();
}

/** The service's outgoing call with node:http. */
function postWithHttp(item: Instruction): Promise<void> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify(item.arguments);
    const req = http.request(item.url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('error', reject);
    req.end(body);
  });
}

function expressService(): http.RequestListener {
  const app = express();
  app.use(traceHttp());
  app.post('/test', express.json(), async (req, res, next) => {
    try {
      for (const item of req.body as Instruction[]) await postWithFetch(item);
      res.json({ ok: true });
    } catch (err) {
      next(err);
    }
  });
  return app;
}

function koaService(): http.RequestListener {
  const app = new Koa();
  app.use(traceHttp());
  const router = new Router();
  router.post('/test', async (ctx) => {
    for (const item of await readJson(ctx.req)) await postWithHttp(item);
    ctx.body = { ok: true };
  });
  app.use(router.routes());
  return app.callback();
}

// --- the harness ---------------------------------------------------------------------------------

type HeaderPairs = [string, string][];

const callbacks = new Map<string, HeaderPairs>();
let harness: Server;
let harnessPort: number;
let stopOutgoing: () => void;

before(async () => {
  stopOutgoing = traceOutgoing();
  harness = http.createServer((req, res) => {
    const pairs: HeaderPairs = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) pairs.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!]);
    callbacks.set(req.url ?? '', pairs);
    req.resume();
    req.on('end', () => res.end('{}'));
  });
  harnessPort = await listen(harness);
});
after(async () => {
  stopOutgoing();
  await closeServer(harness);
});

/** Sends `headers` (repeats and odd casing kept as given) to the service; returns each callback's headers. */
async function makeRequest(servicePort: number, headers: HeaderPairs, count = 1): Promise<HeaderPairs[]> {
  const id = randomUUID();
  const instructions: Instruction[] = Array.from({ length: count }, (_, i) => ({ url: `http://127.0.0.1:${harnessPort}/callback/${id}.${i}`, arguments: [] }));
  const body = JSON.stringify(instructions);
  const raw = ['Host', `127.0.0.1:${servicePort}`, 'Content-Type', 'application/json', 'Content-Length', String(Buffer.byteLength(body))];
  for (const [k, v] of headers) raw.push(k, v);
  const status = await new Promise<number>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: servicePort, path: '/test', method: 'POST', headers: raw as unknown as http.OutgoingHttpHeaders }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
  assert.equal(status, 200, 'the service answered');
  return instructions.map((_, i) => {
    const got = callbacks.get(`/callback/${id}.${i}`);
    assert.ok(got, `the service called back (${i})`);
    return got;
  });
}

interface Traceparent {
  version: string;
  traceId: string;
  parentId: string;
  flags: string;
}

function getTraceparent(headers: HeaderPairs): Traceparent {
  const values = headers.filter(([k]) => k.toLowerCase() === 'traceparent').map(([, v]) => v);
  assert.equal(values.length, 1, `exactly one traceparent header, got ${JSON.stringify(values)}`);
  const parsed = parseTraceparent(values[0]);
  assert.ok(parsed, `a well-formed traceparent, got ${values[0]}`);
  return { version: parsed[0], traceId: parsed[1], parentId: parsed[2], flags: parsed[3] };
}

// W3C Trace Context Level 2, 3.3.1: keys, values, at most 32 members, no repeated key.
const KEY = /^(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})$/;
const VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/** The tracestate the service sent, as an ordered map; anything malformed fails the test. */
function getTracestate(headers: HeaderPairs): Map<string, string> {
  const values = headers.filter(([k]) => k.toLowerCase() === 'tracestate').map(([, v]) => v);
  const state = new Map<string, string>();
  for (const value of values) {
    assert.notEqual(value.trim(), '', 'no empty tracestate header');
    for (const member of value.split(',')) {
      const text = member.trim();
      if (text === '') continue;
      const eq = text.indexOf('=');
      const key = text.slice(0, eq);
      const val = text.slice(eq + 1);
      assert.ok(eq > 0 && KEY.test(key) && VALUE.test(val), `a well-formed tracestate member, got ${JSON.stringify(text)}`);
      assert.ok(!state.has(key), `tracestate key ${key} sent once`);
      state.set(key, val);
    }
  }
  assert.ok(state.size <= 32, 'at most 32 tracestate members');
  return state;
}

const T = '12345678901234567890123456789012';
const P = '1234567890123456';
const tp = (value: string): HeaderPairs => [['traceparent', value]];
const withState = (...states: string[]): HeaderPairs => [['traceparent', `00-${T}-${P}-00`], ...states.map((s): [string, string] => ['tracestate', s])];

interface Case {
  name: string;
  headers: HeaderPairs;
  check(traceparent: Traceparent, tracestate: Map<string, string>): void;
}

const sameTrace = (p: Traceparent): void => {
  assert.equal(p.traceId, T);
  assert.notEqual(p.parentId, P);
};
const newTrace = (p: Traceparent): void => {
  assert.notEqual(p.traceId, T);
  assert.notEqual(p.traceId, '0'.repeat(32));
};
const has = (state: Map<string, string>, key: string, value: string): void => assert.equal(state.get(key), value, `tracestate ${key}=${value}`);
const lacks = (state: Map<string, string>, key: string): void => assert.equal(state.has(key), false, `tracestate without ${key}`);

const allowedKey = 'abcdefghijklmnopqrstuvwxyz0123456789_-*/';
let allowedValue = '';
for (let c = 0x20; c <= 0x7e; c++) if (c !== 0x2c && c !== 0x3d) allowedValue += String.fromCharCode(c);

const cases: Case[] = [
  { name: 'both traceparent and tracestate missing', headers: [], check: () => undefined },
  { name: 'traceparent included, tracestate missing', headers: tp(`00-${T}-${P}-01`), check: sameTrace },
  {
    name: 'traceparent duplicated',
    headers: [
      ['traceparent', `00-12345678901234567890123456789011-${P}-01`],
      ['traceparent', `00-${T}-${P}-01`],
    ],
    check: (p) => {
      newTrace(p);
      assert.notEqual(p.traceId, '12345678901234567890123456789011');
    },
  },
  { name: 'traceparent header name trace-parent', headers: [['trace-parent', `00-${T}-${P}-01`]], check: newTrace },
  { name: 'traceparent header name trace.parent', headers: [['trace.parent', `00-${T}-${P}-01`]], check: newTrace },
  ...['TraceParent', 'TrAcEpArEnT', 'TRACEPARENT'].map((name): Case => ({ name: `traceparent header name ${name}`, headers: [[name, `00-${T}-${P}-01`]], check: sameTrace })),
  { name: 'version 00 with a trailing dot', headers: tp(`00-${T}-${P}-01.`), check: newTrace },
  { name: 'version 00 with a trailing field', headers: tp(`00-${T}-${P}-01-what-the-future-will-be-like`), check: newTrace },
  { name: 'future version cc', headers: tp(`cc-${T}-${P}-01`), check: sameTrace },
  { name: 'future version cc with a trailing field', headers: tp(`cc-${T}-${P}-01-what-the-future-will-be-like`), check: sameTrace },
  { name: 'future version cc with a bad separator', headers: tp(`cc-${T}-${P}-01.what-the-future-will-be-like`), check: newTrace },
  { name: 'version ff', headers: tp(`ff-${T}-${P}-01`), check: newTrace },
  ...['.0', '0.', '000', '0000', '0'].map((v): Case => ({ name: `version ${JSON.stringify(v)}`, headers: tp(`${v}-${T}-${P}-01`), check: newTrace })),
  { name: 'trace id all zero', headers: tp(`00-${'0'.repeat(32)}-${P}-01`), check: newTrace },
  ...[`.${T.slice(1)}`, `${T.slice(0, -1)}.`, `${T}3`, T.slice(0, -1)].map(
    (id): Case => ({
      name: `trace id ${JSON.stringify(id)}`,
      headers: tp(`00-${id}-${P}-01`),
      check: (p) => {
        assert.notEqual(p.traceId, id);
        assert.notEqual(p.traceId, T);
        assert.notEqual(p.traceId, id.slice(1));
      },
    }),
  ),
  ...['0000000000000000', `.${P.slice(1)}`, `${P.slice(0, -1)}.`, `${P}7`, P.slice(0, -1)].map(
    (id): Case => ({ name: `parent id ${JSON.stringify(id)}`, headers: tp(`00-${T}-${id}-01`), check: newTrace }),
  ),
  ...['.0', '0.', '001', '1'].map((f): Case => ({ name: `trace flags ${JSON.stringify(f)}`, headers: tp(`00-${T}-${P}-${f}`), check: newTrace })),
  ...[` 00-${T}-${P}-01`, `\t00-${T}-${P}-01`, `00-${T}-${P}-01 `, `00-${T}-${P}-01\t`, `\t 00-${T}-${P}-01 \t`].map(
    (v): Case => ({ name: `traceparent with white space ${JSON.stringify(v.replace(T, 'T').replace(P, 'P'))}`, headers: tp(v), check: sameTrace }),
  ),
  ...['00', '01', '02', '03'].map(
    (flags): Case => ({
      name: `trace flags ${flags} are kept`,
      headers: tp(`00-${T}-${P}-${flags}`),
      check: (p) => {
        sameTrace(p);
        assert.equal(p.flags, flags);
      },
    }),
  ),
  { name: 'tracestate without traceparent is dropped', headers: [['tracestate', 'foo=1,bar=2']], check: (_p, s) => assert.equal(s.size, 0) },
  {
    name: 'tracestate with traceparent is inherited',
    headers: withState('foo=1,bar=2'),
    check: (p, s) => {
      assert.equal(p.traceId, T);
      has(s, 'foo', '1');
      has(s, 'bar', '2');
    },
  },
  { name: 'tracestate header name trace-state', headers: [...tp(`00-${T}-${P}-00`), ['trace-state', 'foo=1']], check: (_p, s) => lacks(s, 'foo') },
  { name: 'tracestate header name trace.state', headers: [...tp(`00-${T}-${P}-00`), ['trace.state', 'foo=1']], check: (_p, s) => lacks(s, 'foo') },
  ...['TraceState', 'TrAcEsTaTe', 'TRACESTATE'].map(
    (name): Case => ({ name: `tracestate header name ${name}`, headers: [...tp(`00-${T}-${P}-00`), [name, 'foo=1']], check: (_p, s) => has(s, 'foo', '1') }),
  ),
  { name: 'empty tracestate header', headers: withState(''), check: (p) => assert.equal(p.traceId, T) },
  { name: 'empty tracestate header after a member', headers: withState('foo=1', ''), check: (_p, s) => has(s, 'foo', '1') },
  { name: 'empty tracestate header before a member', headers: withState('', 'foo=1'), check: (_p, s) => has(s, 'foo', '1') },
  {
    name: 'several tracestate headers are combined in order',
    headers: withState('foo=1,bar=2', 'rojo=1,congo=2', 'baz=3'),
    check: (_p, s) => assert.deepEqual([...s.entries()], [['foo', '1'], ['bar', '2'], ['rojo', '1'], ['congo', '2'], ['baz', '3']]),
  },
  ...[['foo=1,foo=1'], ['foo=1,foo=2'], ['foo=1', 'foo=1'], ['foo=1', 'foo=2']].map(
    (states): Case => ({ name: `tracestate with a repeated key ${JSON.stringify(states)}`, headers: withState(...states), check: (_p, s) => lacks(s, 'foo') }),
  ),
  { name: 'tracestate with every allowed character', headers: withState(`${allowedKey}=${allowedValue}`), check: (_p, s) => has(s, allowedKey, allowedValue) },
  {
    name: 'tracestate with every allowed character and a vendor',
    headers: withState(`${allowedKey}@a-z0-9_-*/=${allowedValue}`),
    check: (_p, s) => has(s, `${allowedKey}@a-z0-9_-*/`, allowedValue),
  },
  ...['foo=1 \t , \t bar=2, \t baz=3', 'foo=1\t \t,\t \tbar=2,\t \tbaz=3'].map(
    (state): Case => ({
      name: `tracestate with white space ${JSON.stringify(state)}`,
      headers: withState(state),
      check: (_p, s) => {
        has(s, 'foo', '1');
        has(s, 'bar', '2');
        has(s, 'baz', '3');
      },
    }),
  ),
  ...[' foo=1', '\tfoo=1', 'foo=1 ', 'foo=1\t', '\t foo=1 \t'].map(
    (state): Case => ({ name: `tracestate member with white space ${JSON.stringify(state)}`, headers: withState(state), check: (_p, s) => has(s, 'foo', '1') }),
  ),
  ...[
    ['foo =1', 'foo '],
    ['FOO=1', 'FOO'],
    ['foo.bar=1', 'foo.bar'],
  ].map(([state, key]): Case => ({ name: `tracestate key ${JSON.stringify(state)}`, headers: withState(state!), check: (_p, s) => lacks(s, key!) })),
  ...['foo@=1,bar=2', '@foo=1,bar=2', 'foo@@bar=1,bar=2', 'foo@bar@baz=1,bar=2'].map(
    (state): Case => ({ name: `tracestate vendor format ${JSON.stringify(state)}`, headers: withState(state), check: (_p, s) => lacks(s, 'bar') }),
  ),
  {
    name: 'tracestate with 32 members',
    headers: withState(
      'bar01=01,bar02=02,bar03=03,bar04=04,bar05=05,bar06=06,bar07=07,bar08=08,bar09=09,bar10=10',
      'bar11=11,bar12=12,bar13=13,bar14=14,bar15=15,bar16=16,bar17=17,bar18=18,bar19=19,bar20=20',
      'bar21=21,bar22=22,bar23=23,bar24=24,bar25=25,bar26=26,bar27=27,bar28=28,bar29=29,bar30=30',
      'bar31=31,bar32=32',
    ),
    check: (_p, s) => {
      has(s, 'bar01', '01');
      assert.equal(s.size, 32);
    },
  },
  {
    name: 'tracestate with 33 members',
    headers: withState(
      'bar01=01,bar02=02,bar03=03,bar04=04,bar05=05,bar06=06,bar07=07,bar08=08,bar09=09,bar10=10',
      'bar11=11,bar12=12,bar13=13,bar14=14,bar15=15,bar16=16,bar17=17,bar18=18,bar19=19,bar20=20',
      'bar21=21,bar22=22,bar23=23,bar24=24,bar25=25,bar26=26,bar27=27,bar28=28,bar29=29,bar30=30',
      'bar31=31,bar32=32,bar33=33',
    ),
    check: (_p, s) => lacks(s, 'bar01'),
  },
  { name: 'tracestate key of 256 characters', headers: withState('foo=1', `${'z'.repeat(256)}=1`), check: (_p, s) => has(s, 'foo', '1') },
  { name: 'tracestate key of 257 characters', headers: withState('foo=1', `${'z'.repeat(257)}=1`), check: (_p, s) => lacks(s, 'foo') },
  { name: 'tracestate tenant 241 and vendor 14', headers: withState('foo=1', `${'t'.repeat(241)}@${'v'.repeat(14)}=1`), check: (_p, s) => has(s, 'foo', '1') },
  { name: 'tracestate tenant 242', headers: withState('foo=1', `${'t'.repeat(242)}@v=1`), check: (_p, s) => lacks(s, 'foo') },
  { name: 'tracestate vendor 15', headers: withState('foo=1', `t@${'v'.repeat(15)}=1`), check: (_p, s) => lacks(s, 'foo') },
  { name: 'tracestate value foo=bar=baz', headers: withState('foo=bar=baz'), check: (_p, s) => lacks(s, 'foo') },
  {
    name: 'tracestate empty value',
    headers: withState('foo=,bar=3'),
    check: (_p, s) => {
      lacks(s, 'foo');
      lacks(s, 'bar');
    },
  },
];

for (const [label, listener] of [
  ['Express, calling out with fetch', expressService],
  ['Koa, calling out with node:http', koaService],
] as const) {
  describe(`W3C test service (${label})`, () => {
    let service: Server;
    let port: number;
    before(async () => {
      service = http.createServer(listener());
      port = await listen(service);
    });
    after(() => closeServer(service));

    for (const c of cases) {
      it(c.name, async () => {
        const [headers] = await makeRequest(port, c.headers);
        const traceparent = getTraceparent(headers!);
        const tracestate = getTracestate(headers!);
        c.check(traceparent, tracestate);
      });
    }

    it('forwards the same trace id with a new parent id on every call', async () => {
      const results = await makeRequest(port, tp(`00-${T}-${P}-01`), 3);
      const parents = results.map((h) => getTraceparent(h));
      assert.deepEqual(new Set(parents.map((p) => p.traceId)), new Set([T]));
      assert.equal(new Set(parents.map((p) => p.parentId)).size, 3);
    });

    it('uses one new trace for all calls of a request without traceparent', async () => {
      const parents = (await makeRequest(port, [], 3)).map((h) => getTraceparent(h));
      assert.equal(new Set(parents.map((p) => p.traceId)).size, 1);
      assert.equal(new Set(parents.map((p) => p.parentId)).size, 3);
      assert.equal(parents[0]!.flags, '03', 'sampled, and random per Trace Context Level 2');
    });

    it('uses one new trace for all calls of a request with an illegal traceparent', async () => {
      const parents = (await makeRequest(port, tp(`00-${'0'.repeat(32)}-${P}-01`), 3)).map((h) => getTraceparent(h));
      assert.ok(!parents.some((p) => p.traceId === '0'.repeat(32)));
      assert.equal(new Set(parents.map((p) => p.traceId)).size, 1);
      assert.equal(new Set(parents.map((p) => p.parentId)).size, 3);
    });
  });
}
