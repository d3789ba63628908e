// A client on Node's ws against our echo server
// (spec/websocket_peers_spec.lua): argv[2] is the URL.  Sends the cases
// (fragmented ones too), checks the echoes, closes with 4001 "bye" and
// prints "ok N"; then, on new connections, a text that is not UTF-8 and a
// message over the server's max_size: prints the close codes it gets.
const WebSocket = require('ws');
const url = process.argv[2];
const bin = Buffer.alloc(256 * 8000); for (let i = 0; i < bin.length; i++) bin[i] = i & 255;
const cases = ['hello', '', '\u0000nul', '€ 😀 \uffff \u{10ffff}', 'é'.repeat(300000), bin, Buffer.alloc(0)];

function next(ws) { return new Promise((ok) => ws.once('message', (d, b) => ok([d, b]))); }
function opened(ws) { return new Promise((ok, no) => { ws.once('open', ok); ws.once('error', no); }); }
function closed(ws) { return new Promise((ok) => ws.once('close', (code) => ok(code))); }

async function main() {
  const ws = new WebSocket(url, ['chat'], { maxPayload: 1 << 30 });
  await opened(ws);
  if (ws.protocol !== 'chat') throw new Error('protocol ' + ws.protocol);
  let n = 0;
  for (const c of cases) {
    const p = next(ws);
    ws.send(c);
    const [d, isBinary] = await p;
    const want = Buffer.isBuffer(c) ? c : Buffer.from(c);
    if (!d.equals(want) || isBinary !== Buffer.isBuffer(c)) throw new Error('case ' + n);
    n++;
  }
  const p = next(ws);
  ws.send('frag', { fin: false }); ws.send('men', { fin: false }); ws.send('ted');
  if ((await p)[0].toString() !== 'fragmented') throw new Error('fragments');
  const pong = new Promise((ok) => ws.once('pong', ok));
  ws.ping('hi'); await pong;
  const c = closed(ws);
  ws.close(4001, 'bye'); await c;
  console.log('ok', n + 2);
  const bad = new WebSocket(url); await opened(bad);
  const bc = closed(bad);
  bad._socket.write(Buffer.from([0x81, 0x82, 0, 0, 0, 0, 0xc3, 0x28]));
  console.log('invalid', await bc);
  const big = new WebSocket(url); await opened(big);
  const gc = closed(big);
  big.send(Buffer.alloc(9 << 20));
  console.log('big', await gc);
}
main().catch((e) => { console.error(e); process.exit(1); });
