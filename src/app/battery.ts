/**
 * Whether this machine runs on battery, from the Battery Status API (navigator.getBattery) where
 * the browser has it: Chromium does; Firefox and Safari do not, and there the answer is unknown
 * (null) and nothing pauses.
 */

/** The part of a BatteryManager read here. */
export interface BatteryLike extends EventTarget {
  readonly charging: boolean;
  readonly level: number;
}

/** true on battery, false on AC; null when the browser cannot say. */
export type PowerSource = boolean | null;

/** Calls `onChange` with the power source now and on every change; returns a stop function. */
export function watchBattery(onChange: (onBattery: PowerSource) => void, nav: Navigator = navigator): () => void {
  const getBattery = (nav as Navigator & { getBattery?: () => Promise<BatteryLike> }).getBattery;
  if (typeof getBattery !== 'function') {
    onChange(null);
    return () => undefined;
  }
  let battery: BatteryLike | null = null;
  let stopped = false;
  const report = () => {
    if (battery && !stopped) onChange(!battery.charging);
  };
  getBattery.call(nav).then(
    (manager) => {
      if (stopped) return;
      battery = manager;
      manager.addEventListener('chargingchange', report);
      report();
    },
    () => onChange(null), // refused (a permissions policy): unknown
  );
  return () => {
    stopped = true;
    battery?.removeEventListener('chargingchange', report);
  };
}
