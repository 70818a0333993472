// XADD key [NOMKSTREAM] [KEEPREF | DELREF | ACKED] [MAXLEN | MINID [= | ~] threshold [LIMIT count]] <* | id> field value [field value ...]
// https://redis.io/docs/latest/commands/xadd/

function word(value: unknown): string {
  if (typeof value === 'string') return value.length <= 10 ? value.toLowerCase() : '';
  if (Buffer.isBuffer(value)) return value.length <= 10 ? value.toString('latin1').toLowerCase() : '';
  return '';
}

/**
 * The index of the first field name in the arguments of an XADD (after the key), or -1 when the
 * arguments are not a well-formed XADD with at least one complete field-value pair.
 */
export function xaddFieldStart(args: readonly unknown[]): number {
  let i = 1;
  for (;;) {
    if (i >= args.length) return -1;
    const token = word(args[i]);
    if (token === 'nomkstream' || token === 'keepref' || token === 'delref' || token === 'acked') {
      i += 1;
    } else if (token === 'maxlen' || token === 'minid') {
      i += 1;
      const op = word(args[i]);
      if (op === '=' || op === '~') i += 1;
      i += 1; // threshold
      if (word(args[i]) === 'limit') i += 2;
    } else {
      break; // the entry id
    }
  }
  const start = i + 1;
  const count = args.length - start;
  return count > 0 && count % 2 === 0 ? start : -1;
}
