/**
 * A deployment's settings for the page, served as /config.json. `dpow-web start` generates it
 * from its options; a static deployment ships its own file. Credentials come only from here (or
 * from the volunteer's own settings), never from code.
 */
import type { WorkChoice } from './state.ts';

export interface DeploymentConfig {
  /** Shown in the title bar. */
  title: string;
  /** The broker's WebSocket URL. Relative URLs (e.g. "/mqtt") resolve against the page. */
  brokerUrl: string;
  username: string;
  password: string;
  /** Payout address prefixes accepted, e.g. ["nano", "xrb"]. */
  addressPrefixes: string[];
  /** Block explorer link with "{hash}" in place of the block hash; empty for none. */
  explorerBlockUrl: string;
  defaultWork: WorkChoice;
}

export const DEFAULT_DEPLOYMENT: DeploymentConfig = {
  title: 'dpow-web',
  brokerUrl: '/mqtt',
  username: 'client',
  password: 'client',
  addressPrefixes: ['nano', 'xrb'],
  explorerBlockUrl: '',
  defaultWork: 'any',
};

/** Merges a fetched config over the defaults, keeping only well-typed fields. */
export function parseDeployment(input: unknown): DeploymentConfig {
  const out = { ...DEFAULT_DEPLOYMENT };
  if (typeof input !== 'object' || input === null) return out;
  const v = input as Record<string, unknown>;
  for (const key of ['title', 'brokerUrl', 'username', 'password', 'explorerBlockUrl'] as const) {
    if (typeof v[key] === 'string') out[key] = v[key] as string;
  }
  if (Array.isArray(v.addressPrefixes) && v.addressPrefixes.every((p) => typeof p === 'string' && /^[a-z]+$/.test(p))) {
    out.addressPrefixes = v.addressPrefixes as string[];
  }
  if (v.defaultWork === 'any' || v.defaultWork === 'precache' || v.defaultWork === 'ondemand') out.defaultWork = v.defaultWork;
  return out;
}
