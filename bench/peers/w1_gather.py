# W1gather for asyncio: W1 with the N tasks awaited by one asyncio.gather.
import asyncio, sys, time, resource
n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
async def main():
    async def job(i):
        await asyncio.sleep(0)
        return i
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(job(i)) for i in range(1, n + 1)]
    s = sum(await asyncio.gather(*tasks))
    return s, time.perf_counter() - t0
s, dt = asyncio.run(main())
assert s == n * (n + 1) // 2
print("RESULT %.0f %d" % (n / dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
