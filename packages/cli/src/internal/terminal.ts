import Table from 'cli-table3';
import picocolors from 'picocolors';
import type { CliContext } from './CliContext.js';

export type Colors = ReturnType<typeof picocolors.createColors>;

/** Colours only on a terminal, and never when NO_COLOR is set. */
export function colorsFor(stream: CliContext['stdout'], env: NodeJS.ProcessEnv): Colors {
  const enabled = stream.isTTY === true && env.NO_COLOR === undefined && env.TERM !== 'dumb';
  return picocolors.createColors(enabled);
}

/** A table with plain borders; cli-table3's own colouring is off so pipes get clean text. */
export function newTable(head: string[], colWidths?: number[]): Table.Table {
  const options: Table.TableConstructorOptions = { head, style: { head: [], border: [], compact: false }, wordWrap: true };
  if (colWidths) options.colWidths = colWidths;
  return new Table(options);
}
