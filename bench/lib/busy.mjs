// The busy-wait behind the `spin-…` controls: a known CPU cost per request or message, to calibrate
// what such a cost does to the figures.

/** A function that keeps the CPU busy for `us` microseconds (fractions allowed) each time it is called. */
export function busyFor(us) {
  const ns = BigInt(Math.round(us * 1000));
  return () => {
    const until = process.hrtime.bigint() + ns;
    while (process.hrtime.bigint() < until);
  };
}
