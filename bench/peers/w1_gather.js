// W1gather for Node: W1 with the N async functions awaited by one Promise.all.
const n = Number(process.argv[2] || 1000000);
const tick = () => new Promise((r) => setImmediate(r));
async function main() {
  const t0 = process.hrtime.bigint();
  const ps = [];
  for (let i = 1; i <= n; i++) ps.push((async () => { await tick(); return i; })());
  let s = 0;
  for (const v of await Promise.all(ps)) s += v;
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  if (s !== n * (n + 1) / 2) throw new Error("bad sum");
  console.log(`RESULT ${Math.round(n / dt)} ${Math.round(process.resourceUsage().maxRSS)}`);
}
main();
