/**
 * One thread of the parallelism probe (parallelism.ts): spins on integer arithmetic for the
 * milliseconds it is sent and answers with its rate in iterations per ms of its own wall time
 * (and the arithmetic's result, so the loop cannot be optimised away).
 */
const scope = self as unknown as {
  postMessage(answer: [rate: number, result: number]): void;
  addEventListener(type: 'message', listener: (event: MessageEvent<number>) => void): void;
};

scope.addEventListener('message', (event) => {
  const ms = event.data;
  let x = 1;
  let iterations = 0;
  const started = performance.now();
  let elapsed = 0;
  do {
    for (let i = 0; i < 10_000; i++) x = (Math.imul(x, 1_103_515_245) + 12_345) | 0;
    iterations++;
    elapsed = performance.now() - started;
  } while (elapsed < ms);
  scope.postMessage([iterations / elapsed, x]);
});
