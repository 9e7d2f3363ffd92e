// The agent core's domain errors. Each carries a KonsulError code (lib/errors.ts); the HTTP platform
// maps codes to statuses (http/status.ts), so the core never names one. Messages are Consul's texts.
import { defineError } from '../../lib/errors.ts';

/** A registration, check update or catalog command the request got wrong (400). */
export const InvalidAgentRequestError = defineError('InvalidAgentRequestError', 'badRequest');

/** A service or check ID the agent does not know (404). */
export const UnknownAgentEntryError = defineError('UnknownAgentEntryError', 'notFound');

/** A TTL update for a check without a TTL: Consul answers 500 for it. */
export const NoTtlError = defineError('NoTtlError', 'internal');

export function unknownService(serviceId: string): InstanceType<typeof UnknownAgentEntryError> {
  return new UnknownAgentEntryError(`Unknown service ID ${JSON.stringify(serviceId)}. Ensure that the service ID is passed, not the service name.`);
}

export function unknownCheck(checkId: string): InstanceType<typeof UnknownAgentEntryError> {
  return new UnknownAgentEntryError(`Unknown check ID ${JSON.stringify(checkId)}. Ensure that the check ID is passed, not the check name.`);
}
