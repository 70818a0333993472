/**
 * An error a route throws to answer with a given status. Thrown, not returned, so the handler's span
 * records it as an error, and one error middleware renders every failure the same way.
 */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(readonly status: number, message: string) {
    super(message);
  }
}
