/** What a command needs from its surroundings, so tests and embedders can supply their own. */
export interface CliContext {
  cwd: string;
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Set by commands that decide the process's exit code themselves (`trace`, `diff`, `probe`). */
  exitCode: number;
}
