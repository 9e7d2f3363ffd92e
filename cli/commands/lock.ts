// `konsulctl lock <prefix> <command...>`: run a command while holding a lock, as `consul lock` does
// (command/lock/lock.go over api/lock.go):
// - a session (TTL 15s, release behavior, the server's default checks and lock-delay) is created
//   and renewed every TTL/2;
// - the lock is the key <prefix>/.lock, taken with ?acquire and Consul's lock flag value
//   (0x2ddccbc058a50c18); while another session holds it, a blocking query waits for a change;
//   when the key is free but refused (lock-delay), the next attempt comes after --retry;
// - while the command runs, a blocking query watches the key: if it stops naming our session (the
//   session was invalidated: TTL, destroy, a failed check) or a renewal finds the session gone or
//   cannot reach the servers for a whole TTL, the lock is lost and the command is stopped: SIGTERM,
//   then SIGKILL after --kill-grace;
// - when the command ends, the lock is released and the session destroyed.
// Differences from `consul lock`: konsulctl exits with the command's status (consul lock needs
// -child-exit-code), keeps the key after release (its LockIndex keeps counting acquisitions, a
// usable fencing token), has no semaphore mode (-n), and tells the command its lock through the
// environment (KONSUL_LOCK_KEY, KONSUL_LOCK_SESSION).
import type { Command } from 'commander';
import { commanderParser, durationText, parseDuration } from '../args.ts';
import { lazyAction } from './lazy-action.ts';

export function registerLockCommand(program: Command): void {
  program
    .command('lock')
    .description('run a command while holding a lock on a KV prefix, as `consul lock` does')
    .argument('<prefix>', 'the KV prefix to lock; the lock key is <prefix>/.lock')
    .argument('<command...>', 'the command to run (put -- before it when it has options of its own)')
    .option('--name <name>', 'the session\'s name (default: "konsulctl lock <prefix>")')
    .option('--ttl <duration>', 'the session TTL; it is renewed every TTL/2', commanderParser(durationText), '15s')
    .option('--lock-delay <duration>', 'the session\'s lock-delay (default: the server\'s, 15s)', commanderParser(durationText))
    .option('--timeout <duration>', 'give up if the lock is not acquired within this long (default: wait forever)', commanderParser(parseDuration))
    .option('--retry <duration>', 'wait between attempts while the free key is under lock-delay', commanderParser(parseDuration), 5000)
    .option('--kill-grace <duration>', 'when the lock is lost, SIGKILL the command this long after SIGTERM', commanderParser(parseDuration), 5000)
    .option('--no-shell', 'run the command directly instead of through /bin/sh -c')
    .option('--pass-stdin', 'give the command konsulctl\'s standard input (default: none)')
    .option('--verbose', 'report each step on stderr')
    .addHelpText('after', `
The command runs through /bin/sh -c with its words joined by spaces (as consul lock's -shell), or
directly with --no-shell. Its environment has KONSUL_LOCK_KEY and KONSUL_LOCK_SESSION.

Exit status: the command's (128 + N if it died of signal N); 1 if the lock could not be acquired
(--timeout), was lost while the command ran (the command is then stopped), or on a server error;
127 if the command could not be started. SIGINT, SIGTERM and SIGHUP are passed on to the command;
before it starts, they abandon the wait.

Example: konsulctl lock jobs/nightly -- ./backup.sh --full
`)
    .action(lazyAction(() => import('./lock-actions.ts'), (m) => m.runLock));
}
