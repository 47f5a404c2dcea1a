// "host:port" parsing for --raft / --peers. IPv6 hosts are bracketed: "[::1]:9091".

export interface HostPort {
  host: string;
  port: number;
}

/** Parses "host:port", "[v6]:port" or ":port" (all interfaces). Throws on anything else. */
export function parseHostPort(s: string): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s.trim());
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new Error(`bad address "${s}": expected host:port (IPv6 as [addr]:port)`);
  }
  return { host: m[1] ?? m[2] ?? "", port };
}

/** Formats a host and port as parseHostPort accepts them. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
