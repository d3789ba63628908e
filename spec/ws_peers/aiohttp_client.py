# A client on aiohttp against our echo server (spec/websocket_peers_spec.lua):
# argv[1] is the URL.  Sends the cases, checks the echoes, closes with
# 4001 "bye"; prints "ok N".
import asyncio
import sys
import aiohttp

CASES = ["hello", "", "€ 😀 \uffff \U0010ffff", "é" * 300000,
         bytes(range(256)) * 8000, b""]


async def main(url):
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(url, max_msg_size=0, protocols=["chat"]) as ws:
            assert ws.protocol == "chat", ws.protocol
            n = 0
            for c in CASES:
                if isinstance(c, str):
                    await ws.send_str(c)
                else:
                    await ws.send_bytes(c)
                msg = await ws.receive()
                assert msg.data == c, (msg.type, len(c))
                n += 1
            await ws.close(code=4001, message=b"bye")
            print("ok", n, flush=True)

asyncio.run(main(sys.argv[1]))
