/**
 * Renders the app icons (PWA manifest PNGs, apple-touch-icon) and the matching SVG into public/.
 * No dependencies: shapes are point-in-shape tests, 4x4 supersampled, written as PNG with zlib.
 * Run once after changing the design and commit the output: `npm run icons`.
 *
 * Design: a hexagonal block outline with a lightning bolt (work, fast), on a navy tile.
 */
import { crc32, deflateSync } from 'node:zlib';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const OUT = fileURLToPath(new URL('../public/', import.meta.url));

type Rgb = [number, number, number];
type Point = [number, number];
interface IconOptions {
  /** Rounded corners (transparent outside), or a full-bleed tile. */
  rounded: boolean;
  /** How much the glyph is shrunk (the maskable icon's safe zone). */
  scale: number;
}

const NAVY_TOP: Rgb = [0x17, 0x36, 0x63];
const NAVY_BOTTOM: Rgb = [0x0b, 0x16, 0x28];
const RING: Rgb = [0x6e, 0xa8, 0xff];
const BOLT: Rgb = [0xff, 0xd2, 0x5a];

// Shapes in unit coordinates: (0,0) top-left, (1,1) bottom-right, centred at (0.5, 0.5).
const HEX_R = 0.34;
const HEX_W = 0.06;
const BOLT_POINTS: Point[] = [
  [0.545, 0.255],
  [0.37, 0.53],
  [0.49, 0.53],
  [0.45, 0.745],
  [0.635, 0.455],
  [0.51, 0.455],
];

function hexDistance(x: number, y: number): number {
  // Distance-like measure for a pointy-top regular hexagon: max over its three axis projections.
  const dx = Math.abs(x);
  const dy = Math.abs(y);
  return Math.max(dx, dx * 0.5 + dy * (Math.sqrt(3) / 2)) / (Math.sqrt(3) / 2);
}

function inPolygon(x: number, y: number, pts: Point[]): boolean {
  let inside = false;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const [xi, yi] = pts[i];
    const [xj, yj] = pts[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function inRoundedSquare(x: number, y: number, radius: number): boolean {
  const cx = Math.min(Math.max(x, radius), 1 - radius);
  const cy = Math.min(Math.max(y, radius), 1 - radius);
  return (x - cx) ** 2 + (y - cy) ** 2 <= radius ** 2;
}

/** One sample: RGBA for a point of the icon. `scale` shrinks the glyph (maskable safe zone). */
function sample(x: number, y: number, { rounded, scale }: IconOptions): [number, number, number, number] {
  if (rounded && !inRoundedSquare(x, y, 0.2)) return [0, 0, 0, 0];
  const t = y;
  let color = NAVY_TOP.map((c, i) => c + (NAVY_BOTTOM[i] - c) * t) as Rgb;
  const gx = (x - 0.5) / scale + 0.5;
  const gy = (y - 0.5) / scale + 0.5;
  const h = hexDistance(gx - 0.5, gy - 0.5);
  if (h <= HEX_R && h >= HEX_R - HEX_W) color = RING;
  if (inPolygon(gx, gy, BOLT_POINTS)) color = BOLT;
  return [...color, 255];
}

function render(size: number, options: IconOptions): Buffer {
  const SS = 4;
  const rgba = Buffer.alloc(size * size * 4);
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      const acc = [0, 0, 0, 0];
      for (let sy = 0; sy < SS; sy++) {
        for (let sx = 0; sx < SS; sx++) {
          const [r, g, b, a] = sample((px + (sx + 0.5) / SS) / size, (py + (sy + 0.5) / SS) / size, options);
          acc[0] += r * a;
          acc[1] += g * a;
          acc[2] += b * a;
          acc[3] += a;
        }
      }
      const o = (py * size + px) * 4;
      const alpha = acc[3] / (SS * SS);
      rgba[o] = acc[3] ? Math.round(acc[0] / acc[3]) : 0;
      rgba[o + 1] = acc[3] ? Math.round(acc[1] / acc[3]) : 0;
      rgba[o + 2] = acc[3] ? Math.round(acc[2] / acc[3]) : 0;
      rgba[o + 3] = Math.round(alpha);
    }
  }
  return encodePng(size, size, rgba);
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

function encodePng(width: number, height: number, rgba: Buffer): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 6; // RGBA
  // Each row starts with filter type 0 (none).
  const raw = Buffer.alloc((width * 4 + 1) * height);
  for (let y = 0; y < height; y++) rgba.copy(raw, y * (width * 4 + 1) + 1, y * width * 4, (y + 1) * width * 4);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function svg(): string {
  const hex = (r: number) =>
    Array.from({ length: 6 }, (_, i) => {
      const a = (Math.PI / 3) * i - Math.PI / 2;
      return `${(256 + r * 512 * Math.cos(a)).toFixed(1)},${(256 + r * 512 * Math.sin(a)).toFixed(1)}`;
    }).join(' ');
  const ringMid = HEX_R - HEX_W / 2;
  const bolt = BOLT_POINTS.map(([x, y]) => `${(x * 512).toFixed(1)},${(y * 512).toFixed(1)}`).join(' ');
  const rgb = (c: Rgb) => `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 512 512">
  <defs><linearGradient id="bg" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="${rgb(NAVY_TOP)}"/><stop offset="1" stop-color="${rgb(NAVY_BOTTOM)}"/></linearGradient></defs>
  <rect width="512" height="512" rx="102" fill="url(#bg)"/>
  <polygon points="${hex(ringMid)}" fill="none" stroke="${rgb(RING)}" stroke-width="${(HEX_W * 512 * (Math.sqrt(3) / 2)).toFixed(1)}" stroke-linejoin="miter"/>
  <polygon points="${bolt}" fill="${rgb(BOLT)}"/>
</svg>
`;
}

const icons: Array<[string, number, IconOptions]> = [
  ['pwa-192.png', 192, { rounded: true, scale: 1 }],
  ['pwa-512.png', 512, { rounded: true, scale: 1 }],
  // Maskable: full-bleed tile, glyph inside the 80% safe zone.
  ['maskable-512.png', 512, { rounded: false, scale: 0.8 }],
  ['apple-touch-icon.png', 180, { rounded: false, scale: 0.9 }],
  ['favicon-32.png', 32, { rounded: true, scale: 1 }],
];
for (const [name, size, options] of icons) {
  writeFileSync(OUT + name, render(size, options));
  console.log(`public/${name} ${size}x${size}`);
}
writeFileSync(OUT + 'icon.svg', svg());
console.log('public/icon.svg');
