/** Links built from data the network sends: only http(s) URLs ever become an href. */

export function safeHref(url: string): string | null {
  try {
    const u = new URL(url);
    return u.protocol === 'https:' || u.protocol === 'http:' ? u.toString() : null;
  } catch {
    return null;
  }
}

/** The deployment's explorer template ("…/{hash}") filled with a block hash, or null. */
export function explorerLink(template: string, hash: string): string | null {
  if (!template || !template.includes('{hash}')) return null;
  return safeHref(template.replace('{hash}', encodeURIComponent(hash)));
}
