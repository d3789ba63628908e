# An echo server on Python's websockets (spec/websocket_peers_spec.lua):
# prints its port; echoes each message as it came (text as text);
# "fragments" is answered in three frames, "close:CODE:REASON" with a close.
import asyncio
import websockets


async def handler(ws, path=None):
    async for msg in ws:
        if msg == "fragments":
            await ws.send(["frag", "men", "ted"])
        elif isinstance(msg, str) and msg.startswith("close:"):
            _, code, reason = msg.split(":", 2)
            await ws.close(int(code), reason)
        else:
            await ws.send(msg)


async def main():
    async with websockets.serve(handler, "127.0.0.1", 0, max_size=None,
                                subprotocols=["chat"]) as srv:
        print(srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
