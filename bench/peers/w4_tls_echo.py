# W4 over TLS for asyncio (streams API with an ssl context).
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
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(os.environ["W4_CERT"], os.environ["W4_KEY"])
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), ssl=ctx)
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
