# A client on Python's websockets against our echo server
# (spec/websocket_peers_spec.lua): argv[1] is the URL.  Sends the cases,
# checks the echoes, pings, closes with 4001 "bye"; prints "ok N".
import asyncio
import sys
import websockets

CASES = ["hello", "", "\x00nul", "€ 😀 \uffff \U0010ffff", "é" * 300000,
         bytes(range(256)) * 8000, b""]


async def main(url):
    async with websockets.connect(url, max_size=None, subprotocols=["chat"]) as ws:
        assert ws.subprotocol == "chat", ws.subprotocol
        n = 0
        for c in CASES:
            await ws.send(c)
            got = await ws.recv()
            assert got == c, (len(got), len(c), type(got))
            n += 1
        await ws.send(["frag", "men", "ted"])
        assert await ws.recv() == "fragmented"
        await ws.send([b"\x01", b"\x02"])
        assert await ws.recv() == b"\x01\x02"
        pong = await ws.ping(b"hi")
        await asyncio.wait_for(pong, 5)
        await ws.close(4001, "bye")
        print("ok", n + 3, flush=True)

asyncio.run(main(sys.argv[1]))
