// The plugins Konsul ships, in registry order (the start order when no dependency says otherwise).
// A new plugin is added here, and its settings table to the process tables that host it
// (server/config.ts, agent/config.ts).
import { dnsPlugin } from '../dns/plugin.ts';
import type { AnyPlugin } from './plugin.ts';

export const BUILTIN_PLUGINS: readonly AnyPlugin[] = [dnsPlugin];
