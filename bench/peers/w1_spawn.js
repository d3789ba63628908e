// W1 for Node: spawn N async functions that each yield once and return i;
// awaited one by one, or by one Promise.all with "gather" (W1gather).
const n = Number(process.argv[2] || 100000);
const gather = process.argv[3] === "gather";
const tick = () => new Promise((r) => setImmediate(r));
async function main() {
  const t0 = process.hrtime.bigint();
  const ps = [];
  for (let i = 1; i <= n; i++) ps.push((async () => { await tick(); return i; })());
  let s = 0;
  if (gather) for (const v of await Promise.all(ps)) s += v;
  else for (const p of ps) s += await p;
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  if (s !== n * (n + 1) / 2) throw new Error("bad sum");
  console.log(`RESULT ${Math.round(n / dt)} ${Math.round(process.resourceUsage().maxRSS)}`);
}
main();
