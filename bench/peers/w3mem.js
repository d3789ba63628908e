// W3mem for Node: RSS growth per async function sleeping 10 s.
const n = Number(process.argv[2] || 100000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function main() {
  if (global.gc) global.gc();
  const before = process.memoryUsage().rss;
  let started = 0;
  for (let i = 0; i < n; i++) (async () => { started++; await sleep(10000); })();
  while (started < n) await sleep(10);
  if (global.gc) global.gc();
  console.log(`RESULT ${Math.round((process.memoryUsage().rss - before) / n)}`);
  process.exit(0);
}
main();
