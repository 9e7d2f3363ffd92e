// The version Konsul reports; Consul clients parse the Consul version it mimics from agent/self.
export const KONSUL_VERSION = '1.18.0';
