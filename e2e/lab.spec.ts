/**
 * The engine lab (bench.html) wears the app's styles: every piece of text meets WCAG AA contrast
 * against what it is drawn on, in the light and the dark theme; after a compute it shows the
 * rate the job achieved (not the live rate's 0 H/s) and big numbers with grouped digits; and
 * nothing is cut off on a phone.
 */
import { expect, test, type Page } from '@playwright/test';

/** Text whose contrast with its background is under AA: 4.5:1, or 3:1 for large text. */
function lowContrast(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const rgba = (css: string): number[] => (css.match(/[\d.]+/g) ?? ['0', '0', '0', '0']).map(Number).concat(1).slice(0, 4);
    const luminance = ([r, g, b]: number[]) => {
      const c = [r, g, b].map((v) => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      });
      return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
    };
    /** The first opaque background behind an element (the page's when none). */
    const background = (el: Element | null): number[] => {
      for (let at = el; at; at = at.parentElement) {
        const bg = rgba(getComputedStyle(at).backgroundColor);
        if (bg[3] > 0.99) return bg;
      }
      return [255, 255, 255, 1];
    };
    const out: string[] = [];
    for (const el of Array.from(document.body.querySelectorAll<HTMLElement>('*'))) {
      const text = Array.from(el.childNodes).filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent ?? '').join('').trim();
      if (!text || el.closest('[hidden], option') || el.getClientRects().length === 0) continue;
      const style = getComputedStyle(el);
      const fg = rgba(style.color);
      const bg = background(el);
      // A translucent colour over its background, as the eye sees it.
      const seen = fg.slice(0, 3).map((c, i) => c * fg[3] + bg[i] * (1 - fg[3]));
      const [hi, lo] = [luminance(seen), luminance(bg)].sort((a, b) => b - a);
      const ratio = (hi + 0.05) / (lo + 0.05);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      // Disabled controls are exempt from the contrast rule.
      if (el.closest('button:disabled')) continue;
      if (ratio < (large ? 3 : 4.5)) out.push(`"${text.slice(0, 40)}" ${ratio.toFixed(2)}:1`);
    }
    return out;
  });
}

for (const scheme of ['light', 'dark'] as const) {
  test(`the lab's text meets WCAG AA contrast in the ${scheme} theme, before and after a compute`, async ({ page }) => {
    await page.emulateMedia({ colorScheme: scheme });
    await page.goto('/bench.html?backend=wasm&threads=1');
    await expect(page.getByTestId('state')).toHaveText('idle');
    expect(await lowContrast(page)).toEqual([]);
    await page.getByTestId('difficulty').fill('fffff00000000000'); // about a million hashes
    await page.getByTestId('compute').click();
    await expect(page.getByTestId('state')).toHaveText('done', { timeout: 60_000 });
    expect(await lowContrast(page)).toEqual([]);
  });
}

test('after a compute the lab shows the achieved rate and grouped digits, and fits a phone', async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto('/bench.html?backend=wasm&threads=1');
  await page.getByTestId('difficulty').fill('fffff00000000000');
  await page.getByTestId('compute').click();
  await expect(page.getByTestId('state')).toHaveText('done', { timeout: 60_000 });
  const hashes = Number(await page.getByTestId('hashes').getAttribute('data-count'));
  expect(await page.getByTestId('hashes').textContent()).toBe(new Intl.NumberFormat('en').format(hashes));
  await expect(page.getByTestId('total-hashes')).toHaveText(/^\d{1,3}(,\d{3})*$/);
  await expect(page.getByTestId('achieved')).toHaveText(/^[1-9][\d.]* [kMG]?H\/s$/);
  // The live rate is 0 once the job is done: the row says what the job achieved instead.
  await expect(page.getByTestId('hashrate')).toHaveAttribute('data-hps', '0');
  await expect(page.getByTestId('hashrate')).toHaveText(/^[1-9][\d.]* [kMG]?H\/s achieved by the last job$/);
  expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
});
