/**
 * The engine's typed errors across a Comlink boundary. Comlink sends a thrown Error as
 * {name, message, stack} and rebuilds a plain Error; this handler keeps PowCancelledError.root
 * and PowInputError.code, so the far side can use instanceof. Installed on both sides of the
 * boundary (the page and the engine worker, or both ends of a MessageChannel in a test).
 * Pure: Comlink's transfer handlers only, no Worker and no DOM.
 */
import * as Comlink from 'comlink';
import { PowCancelledError } from './types.ts';
import { PowInputError, type PowErrorCode } from './work.ts';

export function installEngineErrorTransfer(): void {
  const original = Comlink.transferHandlers.get('throw');
  if (!original || (original as { engineErrors?: boolean }).engineErrors) return;
  type Wire = { isError: boolean; value: { name?: string; message?: string; code?: string; root?: string } };
  const handler: Comlink.TransferHandler<unknown, unknown> & { engineErrors: true } = {
    engineErrors: true,
    canHandle: (value): value is unknown => original.canHandle(value),
    serialize(thrown) {
      const [serialized, transfer] = original.serialize(thrown);
      const wire = serialized as Wire;
      const error = (thrown as { value?: unknown }).value;
      if (wire.isError && error instanceof PowCancelledError) wire.value.root = error.root;
      if (wire.isError && error instanceof PowInputError) wire.value.code = error.code;
      return [wire, transfer];
    },
    deserialize(serialized) {
      const wire = serialized as Wire;
      if (wire.isError && wire.value.name === 'PowCancelledError' && typeof wire.value.root === 'string') {
        throw new PowCancelledError(wire.value.root);
      }
      if (wire.isError && wire.value.name === 'PowInputError' && typeof wire.value.code === 'string') {
        throw new PowInputError(wire.value.code as PowErrorCode, wire.value.message ?? '');
      }
      return original.deserialize(serialized);
    },
  };
  Comlink.transferHandlers.set('throw', handler);
}
