/**
 * Finds the class a declaration sits in directly, from the source text alone. A method passed around
 * as a bare function (`{ balance: coordinator.balance.bind(coordinator) }`) no longer knows its class
 * at run time, but the static graph names it `Class.method`, so the name is read from the source.
 *
 * A small lexer, not a parser: it skips strings, template literals, comments and regular expression
 * literals, and tracks braces. That is enough to know which `{...}` a position is in and whether that
 * block is a class body.
 */

interface Block {
  start: number;
  end: number;
  className: string | undefined;
}

const KEYWORDS_BEFORE_REGEX = new Set([
  'return', 'typeof', 'case', 'do', 'else', 'in', 'of', 'new', 'delete', 'void', 'throw', 'instanceof',
  'yield', 'await',
]);

const cache = new Map<string, { blocks: Block[]; lineStarts: number[] }>();

function isIdStart(c: string): boolean {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_' || c === '$';
}
function isIdPart(c: string): boolean {
  return isIdStart(c) || (c >= '0' && c <= '9');
}

function scan(text: string): Block[] {
  const blocks: Block[] = [];
  // Open braces: a block, or the `${` of a template literal (which resumes the template on `}`).
  const open: ({ kind: 'block'; index: number } | { kind: 'template' })[] = [];
  // Set between `class Name` and its body's `{`; heritage clauses may hold parens, brackets, type args.
  let pending: { name: string | undefined; depth: number } | undefined;
  let nesting = 0; // ( [ and, while a class is pending, <
  let prev = ''; // last significant token, to tell a regex from a division
  let i = 0;
  const n = text.length;

  const skipTemplate = (): void => {
    // i is just after a backtick or a `}` that closed `${`
    while (i < n) {
      const c = text[i];
      if (c === '\\') i += 2;
      else if (c === '`') {
        i++;
        prev = 'x';
        return;
      } else if (c === '$' && text[i + 1] === '{') {
        i += 2;
        open.push({ kind: 'template' });
        prev = '{';
        return;
      } else i++;
    }
  };

  while (i < n) {
    const c = text[i] as string;
    const next = text[i + 1];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
    } else if (c === '/' && next === '/') {
      const eol = text.indexOf('\n', i);
      i = eol === -1 ? n : eol + 1;
    } else if (c === '/' && next === '*') {
      const close = text.indexOf('*/', i + 2);
      i = close === -1 ? n : close + 2;
    } else if (c === '"' || c === "'") {
      i++;
      while (i < n && text[i] !== c && text[i] !== '\n') i += text[i] === '\\' ? 2 : 1;
      i++;
      prev = 'x';
    } else if (c === '`') {
      i++;
      skipTemplate();
    } else if (c === '/' && (prev === '' || (!isIdPart(prev[0] as string) && !')]}'.includes(prev)) || KEYWORDS_BEFORE_REGEX.has(prev))) {
      // A regular expression literal: skip it, respecting escapes and character classes.
      i++;
      let inClass = false;
      while (i < n && text[i] !== '\n') {
        const r = text[i];
        if (r === '\\') i += 2;
        else {
          if (r === '[') inClass = true;
          else if (r === ']') inClass = false;
          else if (r === '/' && !inClass) break;
          i++;
        }
      }
      i++;
      while (i < n && isIdPart(text[i] as string)) i++;
      prev = 'x';
    } else if (isIdStart(c)) {
      const start = i;
      while (i < n && isIdPart(text[i] as string)) i++;
      const word = text.slice(start, i);
      const before = text[start - 1];
      if (word === 'class' && before !== '.' && !/^\s*:/.test(text.slice(i, i + 8))) {
        pending = { name: undefined, depth: nesting };
      } else if (pending && pending.name === undefined && word !== 'extends' && word !== 'implements' && prev === 'class') {
        pending.name = word;
      }
      prev = word;
    } else if (c >= '0' && c <= '9') {
      while (i < n && (isIdPart(text[i] as string) || text[i] === '.')) i++;
      prev = '0';
    } else {
      if (c === '{') {
        const isClassBody = pending !== undefined && nesting === pending.depth;
        blocks.push({ start: i, end: n, className: isClassBody ? (pending?.name ?? '') : undefined });
        open.push({ kind: 'block', index: blocks.length - 1 });
        if (isClassBody) pending = undefined;
      } else if (c === '}') {
        const top = open.pop();
        if (top?.kind === 'template') {
          i++;
          skipTemplate();
          continue;
        }
        if (top !== undefined) (blocks[top.index] as Block).end = i;
      } else if (c === '(' || c === '[' || (c === '<' && pending !== undefined)) {
        nesting++;
      } else if (c === ')' || c === ']' || (c === '>' && pending !== undefined && next !== '=')) {
        nesting = Math.max(0, nesting - 1);
      } else if (c === ';' && pending !== undefined && nesting === pending.depth) {
        pending = undefined; // `declare class X;` and the like: no body follows
      }
      prev = c;
      i++;
    }
  }
  return blocks;
}

function lineStartsOf(text: string): number[] {
  const starts = [0];
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return starts;
}

/**
 * The name of the class whose body directly holds the position (0-based line and column) in `text`,
 * or undefined when the innermost enclosing block is not a named class body.
 */
export function enclosingClass(key: string, text: string, line: number, column: number): string | undefined {
  let entry = cache.get(key);
  if (entry === undefined) {
    entry = { blocks: scan(text), lineStarts: lineStartsOf(text) };
    cache.set(key, entry);
  }
  const offset = (entry.lineStarts[line] ?? text.length) + column;
  let innermost: Block | undefined;
  for (const b of entry.blocks) {
    if (b.start >= offset) break; // blocks are in order of their opening brace
    if (b.end >= offset) innermost = b;
  }
  return innermost?.className || undefined;
}
