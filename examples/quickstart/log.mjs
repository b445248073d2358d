// One line per event, stamped with the time since start, so the retry, the alert and the delay show.
const startedAt = Date.now();

export function log(kind, message) {
  const t = ((Date.now() - startedAt) / 1000).toFixed(2).padStart(5);
  console.log(`[+${t}s] ${kind.padEnd(7)} ${message}`);
}

export const short = (id) => id.slice(0, 8);
