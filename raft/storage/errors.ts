// Errors of the durable storage. Corruption is never an expected outcome: the server must not start
// on storage it cannot trust, so these errors say exactly where and what is wrong for the operator.

/** Something on disk is unreadable or inconsistent and cannot be repaired safely. */
export class StorageCorruptionError extends Error {
  /** The file or LevelDB directory concerned. */
  readonly path: string;
  /** Which record inside it: a key, a log index, "hard state", "header"... */
  readonly location: string;
  /** What is wrong with it. */
  readonly problem: string;

  constructor(path: string, location: string, problem: string) {
    super(`storage corruption in ${path} (${location}): ${problem}`);
    this.name = 'StorageCorruptionError';
    this.path = path;
    this.location = location;
    this.problem = problem;
  }
}

/** A record that cannot be decoded: wrong checksum, truncated, unknown type. Wrapped by the readers. */
export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}
