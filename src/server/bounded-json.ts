/**
 * The one way the server parses JSON that comes from the network (service requests, RPC bodies,
 * node feed frames): size and nesting are bounded on the text, before JSON.parse builds anything
 * and before any code walks the value. A value 6,000 arrays deep parses in V8, but the first
 * JSON.stringify or recursive walk of it overflows the stack; bounded here, nothing downstream
 * has to think about shape again.
 *
 * Errors are values: the caller counts and answers the reason.
 */

/** Deepest nesting of arrays and objects accepted. Every legitimate message is under 8. */
export const MAX_JSON_DEPTH = 32;

export type JsonRefusal = 'too-large' | 'too-deep' | 'not-json';

export type JsonResult = { ok: true; value: unknown } | { ok: false; reason: JsonRefusal };

export interface JsonLimits {
  /** Largest text accepted, in UTF-8 bytes. */
  maxBytes: number;
  /** Default MAX_JSON_DEPTH. */
  maxDepth?: number;
}

/**
 * True when the bracket nesting of `text` passes `limit` (one pass, stopping there, no
 * allocation). Brackets inside strings do not count. Only meaningful for text that is JSON; for
 * anything else JSON.parse refuses it anyway.
 */
function nestingExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    switch (c) {
      case '"':
        inString = true;
        break;
      case '[':
      case '{':
        if (++depth > limit) return true;
        break;
      case ']':
      case '}':
        depth--;
        break;
    }
  }
  return false;
}

/** Parses `text` if it is within `limits`; otherwise says which limit it broke. Never throws. */
export function parseBoundedJson(text: string, limits: JsonLimits): JsonResult {
  // UTF-8 is at most 3 bytes per UTF-16 unit: the exact count only when it could matter.
  if (text.length * 3 > limits.maxBytes && Buffer.byteLength(text, 'utf8') > limits.maxBytes) return { ok: false, reason: 'too-large' };
  if (nestingExceeds(text, limits.maxDepth ?? MAX_JSON_DEPTH)) return { ok: false, reason: 'too-deep' };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, reason: 'not-json' };
  }
}
