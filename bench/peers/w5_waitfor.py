# W5 for asyncio: N tasks each wait_for(sleep(U[0, 20 ms]), 10 ms).
import asyncio, random, sys, time
n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
random.seed(42)
delays = [random.random() * 0.020 for _ in range(n)]
expected = sum(1 for d in delays if d > 0.010)
async def one(d):
    try:
        await asyncio.wait_for(asyncio.sleep(d), 0.010)
        return 0
    except TimeoutError:
        return 1
async def main():
    t0 = time.perf_counter()
    r = await asyncio.gather(*(one(d) for d in delays))
    return sum(r), time.perf_counter() - t0
s, dt = asyncio.run(main())
print("RESULT %.4f %d" % (dt, s - expected))
