import { hookError } from './debug.js';

/** One way to name a path: exact string, pattern, or predicate. */
export type PathMatcher = string | RegExp | ((path: string) => boolean);

/** A path test built once at setup. */
export type PathTest = (path: string) => boolean;

function plainPattern(re: RegExp): RegExp {
  // A `g` or `y` flag makes `test` remember `lastIndex` between calls, so the same path would match
  // on one request and not on the next.
  return re.global || re.sticky ? new RegExp(re.source, re.flags.replace(/[gy]/g, '')) : re;
}

/**
 * Turns the `ignore` option into one test, or undefined when nothing is ignored. Misuse throws here,
 * at setup; a predicate that throws later counts as "not ignored" so the request is still traced.
 */
export function compilePathTest(option: PathMatcher | readonly PathMatcher[] | undefined, name: string): PathTest | undefined {
  if (option === undefined) return undefined;
  const list = Array.isArray(option) ? (option as readonly PathMatcher[]) : [option as PathMatcher];
  const exact = new Set<string>();
  const patterns: RegExp[] = [];
  const predicates: ((path: string) => boolean)[] = [];
  for (const item of list) {
    if (typeof item === 'string') exact.add(item);
    else if (item instanceof RegExp) patterns.push(plainPattern(item));
    else if (typeof item === 'function') predicates.push(item);
    else throw new TypeError(`${name} must be a string, a RegExp, a function or an array of those`);
  }
  if (exact.size === 0 && patterns.length === 0 && predicates.length === 0) return undefined;
  return (path: string): boolean => {
    if (exact.has(path)) return true;
    for (const re of patterns) if (re.test(path)) return true;
    for (const fn of predicates) {
      try {
        if (fn(path) === true) return true;
      } catch (err) {
        hookError(name, err);
      }
    }
    return false;
  };
}

// RFC 9110 token: the characters a header field name may use.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

/** A header allow-list, lower-cased once, with the attribute key of each name. */
export interface HeaderList {
  /** Lower-case name to its index in `keys`. */
  readonly index: ReadonlyMap<string, number>;
  readonly names: readonly string[];
  /** `<prefix><name>`, the attribute key for each name. */
  readonly keys: readonly string[];
}

export function compileHeaderList(option: readonly string[] | undefined, name: string, prefix: string): HeaderList | undefined {
  if (option === undefined) return undefined;
  if (!Array.isArray(option)) throw new TypeError(`${name} must be an array of header names`);
  const names: string[] = [];
  for (const item of option) {
    if (typeof item !== 'string') throw new TypeError(`${name} must be an array of header names`);
    const lower = item.trim().toLowerCase();
    if (!TOKEN.test(lower)) throw new TypeError(`${name}: ${JSON.stringify(item)} is not a header name`);
    if (!names.includes(lower)) names.push(lower);
  }
  if (names.length === 0) return undefined;
  return {
    index: new Map(names.map((n, i) => [n, i])),
    names,
    keys: names.map((n) => prefix + n),
  };
}

export function positiveInteger(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

export function optionalFunction<F>(value: F | undefined, name: string): F | undefined {
  if (value !== undefined && typeof value !== 'function') throw new TypeError(`${name} must be a function`);
  return value;
}
