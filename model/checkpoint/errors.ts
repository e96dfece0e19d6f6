/**
 * The single error type of the checkpoint store. Every failure of save/load/read
 * surfaces as a CheckpointError whose message starts with the checkpoint path.
 */
export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
  /** The checkpoint directory the error is about. */
  readonly path: string;

  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super(`${path}: ${message}`, options);
    this.path = path;
  }
}

/** Short human description of an unknown thrown value. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
