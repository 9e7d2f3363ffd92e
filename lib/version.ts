// The version Konsul reports; Consul clients parse the Consul version it mimics from agent/self.
// In lib/ because every process layer (server, agent, cli) reports it.
export const KONSUL_VERSION = '1.18.0';
