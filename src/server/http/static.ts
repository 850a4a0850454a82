/**
 * Serves the built app (`dist/`) safely:
 *
 * - paths are URL-decoded once, normalised and resolved under the root; anything that escapes
 *   it, holds a NUL byte or a dot-file segment is refused (400/404), never read;
 * - content types cover everything Vite and the PWA plugin emit (.wasm as application/wasm so
 *   streaming compilation works, .webmanifest as application/manifest+json);
 * - hashed build assets are cached forever (`immutable`); index.html, the service worker and
 *   everything else revalidate on each load (`no-cache` + ETag), so a new build shows up at once;
 * - an unknown path without a file extension that asks for HTML gets index.html (SPA routes).
 */
import { createReadStream, promises as fs, type Stats } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';

export const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.wgsl': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
};

const IMMUTABLE = 'public, max-age=31536000, immutable';
const REVALIDATE = 'no-cache';

/** Vite names hashed files `name-<8+ chars of [A-Za-z0-9_-]>.ext`; only those never change. */
const HASHED = /-[A-Za-z0-9_-]{8,}\.[a-z0-9]+$/;

export function contentType(file: string): string {
  return CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

export function cacheControl(urlPath: string): string {
  const base = path.posix.basename(urlPath);
  if (base === 'index.html' || base === 'sw.js' || base === 'registerSW.js') return REVALIDATE;
  return HASHED.test(base) ? IMMUTABLE : REVALIDATE;
}

export type Resolved = { ok: true; file: string; urlPath: string } | { ok: false; status: 400 | 404; reason: string };

/** Maps a request path to a file under `root`, or says why not. Pure apart from `path`. */
export function resolveStaticPath(root: string, rawUrl: string): Resolved {
  const pathname = rawUrl.split('?')[0].split('#')[0];
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return { ok: false, status: 400, reason: 'bad percent-encoding' };
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return { ok: false, status: 400, reason: 'bad character in path' };
  if (!decoded.startsWith('/')) return { ok: false, status: 400, reason: 'path must be absolute' };
  const segments = decoded.split('/');
  if (segments.some((s) => s === '..')) return { ok: false, status: 400, reason: 'path traversal' };
  if (segments.some((s) => s.startsWith('.') && s !== '.well-known' && s !== '')) {
    return { ok: false, status: 404, reason: 'hidden file' };
  }
  const urlPath = path.posix.normalize(decoded.endsWith('/') ? `${decoded}index.html` : decoded);
  const absRoot = path.resolve(root);
  const file = path.resolve(absRoot, `.${urlPath}`);
  if (file !== absRoot && !file.startsWith(absRoot + path.sep)) return { ok: false, status: 400, reason: 'path traversal' };
  return { ok: true, file, urlPath };
}

export interface StaticOptions {
  /** Directory with the built app. */
  root: string;
  /** Serve index.html for unknown extension-less paths that accept HTML. Default true. */
  spaFallback?: boolean;
}

/**
 * Returns a handler that answers GET/HEAD for files under `root`; it returns false (and writes
 * nothing) for other methods so the caller can answer 405 or pass the request on.
 */
export function createStaticHandler(options: StaticOptions) {
  const root = path.resolve(options.root);
  const spaFallback = options.spaFallback ?? true;

  const stat = async (file: string): Promise<Stats | undefined> => {
    try {
      const s = await fs.stat(file);
      return s.isFile() ? s : undefined;
    } catch {
      return undefined;
    }
  };

  return async function serveStatic(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const resolved = resolveStaticPath(root, req.url ?? '/');
    if (!resolved.ok) {
      sendText(res, resolved.status, resolved.status === 400 ? 'Bad request\n' : 'Not found\n');
      return true;
    }
    let { file, urlPath } = resolved;
    let stats = await stat(file);
    if (!stats && spaFallback && path.posix.extname(urlPath) === '' && acceptsHtml(req)) {
      file = path.join(root, 'index.html');
      urlPath = '/index.html';
      stats = await stat(file);
    }
    if (!stats) {
      sendText(res, 404, 'Not found\n');
      return true;
    }
    const etag = `"${stats.size.toString(16)}-${Math.floor(stats.mtimeMs).toString(16)}"`;
    res.setHeader('Cache-Control', cacheControl(urlPath));
    res.setHeader('ETag', etag);
    res.setHeader('Last-Modified', stats.mtime.toUTCString());
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304).end();
      return true;
    }
    res.writeHead(200, { 'Content-Type': contentType(file), 'Content-Length': stats.size });
    if (req.method === 'HEAD') {
      res.end();
      return true;
    }
    await new Promise<void>((resolve) => {
      const stream = createReadStream(file);
      stream.on('error', () => {
        res.destroy();
        resolve();
      });
      stream.on('end', () => resolve());
      stream.pipe(res);
    });
    return true;
  };
}

function acceptsHtml(req: IncomingMessage): boolean {
  const accept = req.headers.accept;
  return accept === undefined || accept.includes('text/html') || accept.includes('*/*');
}

function sendText(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' }).end(body);
}
