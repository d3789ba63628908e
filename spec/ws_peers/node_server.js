// An echo server on Node's ws (spec/websocket_peers_spec.lua): prints its
// port; echoes each message as it came.  "fragments": three frames;
// "close:CODE:REASON": a close; "vanish": half a frame, then the TCP
// connection is destroyed; "hang": it stops reading (a close is never
// answered); "invalid": a text frame that is not UTF-8.
const { WebSocketServer } = require('ws');
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 1 << 30 });
wss.on('listening', () => console.log(wss.address().port));
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    const s = isBinary ? null : data.toString();
    if (s === 'fragments') {
      ws.send('frag', { fin: false }); ws.send('men', { fin: false }); ws.send('ted');
    } else if (s !== null && s.startsWith('close:')) {
      const [, code, reason] = s.split(':');
      ws.close(+code, reason);
    } else if (s === 'vanish') {
      ws._socket.write(Buffer.from([0x82, 0x7e, 0x03, 0xe8, 1, 2, 3]));
      ws._socket.destroy();
    } else if (s === 'hang') {
      ws._socket.pause();
    } else if (s === 'invalid') {
      ws._socket.write(Buffer.from([0x81, 0x02, 0xc3, 0x28]));
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
});
