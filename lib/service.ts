// The one shape of a long-lived part of a process (the Raft host, the RPC listener, the HTTP app,
// the DNS interface, the leader's housekeeping, the agent's heartbeat...) and the one supervisor
// that runs them: started in order, stopped in reverse, so that nothing is stopped while a part
// started after it may still use it. Stopping goes through every service even when some fail; the
// failures are collected and reported together once all of them were asked to stop.
//
// Pure: no Node built-ins, no project imports.

export interface Service {
  /** Names the service in errors ("raft", "dns plugin"). */
  readonly name: string;
  /** Absent for a part that is running once constructed (registered with Supervisor.adopt). */
  start?(): void | Promise<unknown>;
  stop(): void | Promise<unknown>;
}

/** Stopping failed for some services; every other service was still stopped. */
export class ServiceStopError extends AggregateError {
  readonly failures: readonly { readonly service: string; readonly error: unknown }[];
  constructor(failures: readonly { readonly service: string; readonly error: unknown }[]) {
    super(
      failures.map((f) => f.error),
      `stopping ${failures.map((f) => `${f.service}: ${f.error instanceof Error ? f.error.message : String(f.error)}`).join('; ')}`,
    );
    this.name = 'ServiceStopError';
    this.failures = failures;
  }
}

export class Supervisor {
  private readonly running: Service[] = [];
  private stopping: Promise<void> | null = null;

  /** Starts `service` and records it; a service whose start throws is not recorded (it stopped itself). */
  async start<S extends Service>(service: S): Promise<S> {
    if (this.stopping !== null) throw new Error(`cannot start ${service.name}: the process is stopping`);
    await service.start?.();
    this.running.push(service);
    return service;
  }

  /**
   * Starts the services in order. When one fails, the ones this call started are stopped again
   * (in reverse) and the start error is thrown; services started before the call keep running.
   */
  async startAll(services: readonly Service[]): Promise<void> {
    const before = this.running.length;
    try {
      for (const service of services) await this.start(service);
    } catch (err) {
      const started = this.running.splice(before);
      await stopInReverse(started).catch(() => undefined);
      throw err;
    }
  }

  /** Records a part that is already running: only its stop is the supervisor's. */
  adopt(name: string, stop: () => void | Promise<unknown>): void {
    this.running.push({ name, stop });
  }

  /** The names of the running services, in start order. */
  names(): string[] {
    return this.running.map((s) => s.name);
  }

  /**
   * Stops every service in reverse start order, each once, whatever the others do. Resolves when
   * all stopped; rejects with a ServiceStopError naming those that failed. Later calls share it.
   */
  stop(): Promise<void> {
    this.stopping ??= stopInReverse(this.running.splice(0));
    return this.stopping;
  }
}

async function stopInReverse(services: readonly Service[]): Promise<void> {
  const failures: { service: string; error: unknown }[] = [];
  for (const service of [...services].reverse()) {
    try {
      await service.stop();
    } catch (error) {
      failures.push({ service: service.name, error });
    }
  }
  if (failures.length > 0) throw new ServiceStopError(failures);
}

/** Names an object that has start/stop methods (a class written before this shape) as a Service. */
export function service(name: string, part: { start?(): void | Promise<unknown>; stop(): void | Promise<unknown> }): Service {
  return {
    name,
    ...(part.start !== undefined ? { start: () => part.start!() } : {}),
    stop: () => part.stop(),
  };
}
