// konsulctl's commands are defined (arguments, options, help) in cli/commands/<name>.ts and
// implemented in <name>-actions.ts, which a command imports only when it runs: `konsulctl --help`
// loads no implementation and `konsulctl kv get` only the kv one (docs/adr/0023-build.md).

/** A commander action that imports its implementation when the command runs. */
export function lazyAction<M, A extends unknown[]>(load: () => Promise<M>, pick: (module: M) => (...args: A) => Promise<unknown>): (...args: A) => Promise<void> {
  return async (...args) => {
    await pick(await load())(...args);
  };
}
