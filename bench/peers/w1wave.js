// W1wave for Node: N short-lived async functions in waves of 1,000.
const n = Number(process.argv[2] || 1000000);
const tick = () => new Promise((r) => setImmediate(r));
async function main() {
  const t0 = process.hrtime.bigint();
  let s = 0;
  for (let base = 0; base < n; base += 1000) {
    const ps = [];
    for (let j = 1; j <= Math.min(1000, n - base); j++) {
      const i = base + j;
      ps.push((async () => { await tick(); return i; })());
    }
    for (const v of await Promise.all(ps)) s += v;
  }
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  if (s !== n * (n + 1) / 2) throw new Error("bad sum");
  console.log(`RESULT ${Math.round(n / dt)}`);
}
main();
