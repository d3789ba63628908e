// W5 for Node: N promises race a sleep U[0, 20 ms] against a 10 ms timeout.
const n = Number(process.argv[2] || 10000);
let seed = 42;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const delays = Array.from({ length: n }, () => rnd() * 20);
const expected = delays.filter((d) => d > 10).length;
const sleep = (ms, v) => new Promise((r) => setTimeout(() => r(v), ms));
async function one(d) {
  let timer;
  const to = new Promise((r) => { timer = setTimeout(() => r(1), 10); });
  const v = await Promise.race([sleep(d, 0), to]);
  clearTimeout(timer);
  return v;
}
const t0 = process.hrtime.bigint();
Promise.all(delays.map(one)).then((r) => {
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`RESULT ${dt.toFixed(4)} ${r.reduce((a, b) => a + b, 0) - expected}`);
});
