import { InvalidArgumentError } from 'commander';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `30s`, `2m`, `500ms`, `1h`, or a bare number of seconds, as milliseconds. */
export function parseDuration(value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!match) throw new InvalidArgumentError('expected a duration such as 30s, 2m or 500ms.');
  const ms = Number(match[1]) * UNITS[match[2] ?? 's']!;
  if (!Number.isFinite(ms) || ms <= 0) throw new InvalidArgumentError('expected a positive duration.');
  return Math.round(ms);
}

export function parseInteger(value: string, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`${name} expects a whole number.`);
  const n = Number(value);
  if (n < min || n > max) throw new InvalidArgumentError(`${name} must be between ${min} and ${max}.`);
  return n;
}

export function parseRatio(value: string, name: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError(`${name} expects a number from 0 to 1.`);
  return n;
}
