// W7 (Node fetch, undici): N GETs from C concurrent workers.  node w7_fetch.js URL N C
const [url, n, c] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
let started = 0, bytes = 0;
async function worker() {
  while (started < n) {
    started++;
    const res = await fetch(url);
    bytes += (await res.text()).length;
  }
}
(async () => {
  const t0 = performance.now();
  await Promise.all(Array.from({ length: c }, worker));
  const dt = (performance.now() - t0) / 1000;
  if (bytes !== 13 * n) throw new Error("short: " + bytes);
  console.log("RESULT " + Math.round(n / dt));
})();
