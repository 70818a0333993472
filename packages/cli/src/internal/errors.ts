/** An error the CLI reports as one line and turns into an exit code. */
export class CliError extends Error {
  readonly exitCode: number;

  constructor(message: string, exitCode: number) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/** Bad arguments or options: exit code 2, as shells and CI expect of usage errors. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2);
    this.name = 'UsageError';
  }
}

/** An input file that cannot be read, is not JSON or does not match its schema: exit code 1. */
export class InputError extends CliError {
  constructor(message: string) {
    super(message, 1);
    this.name = 'InputError';
  }
}
