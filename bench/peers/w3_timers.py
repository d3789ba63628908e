# W3 for asyncio: N tasks sleep random delays in [0, 1 s]; overhead = wall - max delay.
import asyncio, random, sys, time, resource
n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
random.seed(42)
delays = [random.random() for _ in range(n)]
async def main():
    t0 = time.perf_counter()
    await asyncio.gather(*(asyncio.sleep(d) for d in delays))
    return time.perf_counter() - t0
dt = asyncio.run(main())
print("RESULT %.4f %d" % (dt - max(delays), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
