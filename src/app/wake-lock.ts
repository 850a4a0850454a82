/**
 * Keeps the screen on while a kiosk works (Screen Wake Lock). The browser drops the lock when
 * the page is hidden, so it is asked for again when the page becomes visible.
 */
import { effect, type ReadonlySignal } from '@preact/signals';

export function holdWakeLockWhile(active: ReadonlySignal<boolean>, held: { value: boolean }): () => void {
  if (!('wakeLock' in navigator)) return () => undefined;
  let sentinel: WakeLockSentinel | null = null;
  let wanted = false;

  const acquire = async () => {
    if (!wanted || sentinel || document.visibilityState !== 'visible') return;
    try {
      sentinel = await navigator.wakeLock.request('screen');
      held.value = true;
      sentinel.addEventListener('release', () => {
        sentinel = null;
        held.value = false;
      });
    } catch {
      // Refused (battery saver, not visible, no permission): try again on the next change.
      held.value = false;
    }
  };
  const release = () => {
    sentinel?.release().catch(() => undefined);
    sentinel = null;
  };
  const onVisibility = () => void acquire();
  document.addEventListener('visibilitychange', onVisibility);
  const stopEffect = effect(() => {
    wanted = active.value;
    if (wanted) void acquire();
    else release();
  });
  return () => {
    stopEffect();
    release();
    document.removeEventListener('visibilitychange', onVisibility);
  };
}
