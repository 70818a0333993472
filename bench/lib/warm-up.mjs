// The warm-up every broker variant runs before its clock starts. A fixed 2,000 messages (the earlier
// warm-up) took 30 to 200 ms, and V8 was still compiling the hot paths for seconds after. Measured in
// one process in chunks of 20,000 messages, plain ioredis pub/sub went from about 61,700 messages per
// second in the first chunk to 75,000 to 85,000 from the sixth on, the traced variant from 33,800 to
// 52,000 to 54,000; plain kafkajs eachMessage about doubled over ten chunks of 10,000. The HTTP suite
// warms up for 3 s for the same reason.
//
//   BENCH_WARMUP=<seconds>   (default 3; 0 sends one batch of the warm-up size and no more)
import { performance } from 'node:perf_hooks';

const raw = process.env.BENCH_WARMUP ?? '3';
export const WARMUP_SECONDS = Number(raw);
if (raw.trim() === '' || !Number.isFinite(WARMUP_SECONDS) || WARMUP_SECONDS < 0) {
  console.error(`BENCH_WARMUP must be a number of seconds, 0 or more, got ${raw}`);
  process.exit(2);
}

/** Calls `run(count)` again and again until BENCH_WARMUP seconds have passed; always at least once. */
export async function warmUp(run, count) {
  const until = performance.now() + WARMUP_SECONDS * 1000;
  do await run(count);
  while (performance.now() < until);
}
