# W4 server for asyncio (streams API).  Usage: w4_echo.py [tls] PORT --
# with "tls", over TLS (W4tls) with the files named by W4_CERT and W4_KEY.
import asyncio, os, ssl, sys
async def handle(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()
async def main():
    ctx = None
    if sys.argv[1] == "tls":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(os.environ["W4_CERT"], os.environ["W4_KEY"])
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[-1]), ssl=ctx)
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
