import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { archeologyResultsSchema, dynamicTracesSchema } from '@cyb/core';
import { InputError } from './errors.js';
import type { ArcheologyResults, DynamicTraces } from './formats.js';

// Extra fields are allowed by the schemas; strict mode would only log noise about nullable types.
const ajv = new Ajv({ allErrors: false, strict: false });
let validateDynamic: ValidateFunction | undefined;
let validateArcheology: ValidateFunction | undefined;

function readJson(file: string, cwd: string): unknown {
  const full = path.resolve(cwd, file);
  let text: string;
  try {
    text = readFileSync(full, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new InputError(`${file}: cannot read (${code === 'ENOENT' ? 'no such file' : code ?? String(error)})`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new InputError(`${file}: not JSON (${(error as Error).message})`);
  }
}

function check(validate: ValidateFunction, doc: unknown, file: string, what: string): void {
  if (validate(doc)) return;
  const first = validate.errors?.[0];
  const where = first?.instancePath ? first.instancePath : '(root)';
  throw new InputError(`${file}: does not match the ${what} schema: ${where} ${first?.message ?? 'is invalid'}`);
}

/** Reads and validates a `dynamic-traces.json`; an unreadable or invalid file is an {@link InputError}. */
export function readDynamicTraces(file: string, cwd: string): DynamicTraces {
  const doc = readJson(file, cwd);
  validateDynamic ??= ajv.compile(dynamicTracesSchema);
  check(validateDynamic, doc, file, 'dynamic-traces.json');
  return doc as DynamicTraces;
}

/** Reads and validates an `archeology-results.json`; an unreadable or invalid file is an {@link InputError}. */
export function readArcheologyResults(file: string, cwd: string): ArcheologyResults {
  const doc = readJson(file, cwd);
  validateArcheology ??= ajv.compile(archeologyResultsSchema);
  check(validateArcheology, doc, file, 'archeology-results.json');
  const results = doc as ArcheologyResults;
  // `edges` is optional in the schema (an addition to the note's shape); treat a missing list as none.
  results.edges ??= [];
  return results;
}

/** Validates a document about to be written, so a bug never produces a file the readers reject. */
export function assertArcheologyResults(doc: unknown): void {
  validateArcheology ??= ajv.compile(archeologyResultsSchema);
  check(validateArcheology, doc, 'archeology-results.json', 'archeology-results.json');
}
