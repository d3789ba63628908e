// W3 for Node: N promises sleep random delays in [0, 1 s]; overhead = wall - max delay.
const n = Number(process.argv[2] || 100000);
let seed = 42;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const delays = Array.from({ length: n }, rnd);
const t0 = process.hrtime.bigint();
Promise.all(delays.map((d) => new Promise((r) => setTimeout(r, d * 1000)))).then(() => {
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`RESULT ${(dt - Math.max(...delays)).toFixed(4)} ${process.resourceUsage().maxRSS}`);
});
