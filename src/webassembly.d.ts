/**
 * The part of the WebAssembly JS API this project uses. Browsers and Node 20 both have the
 * global, but only lib.dom declares it (@types/node 20 does not), so the pure and Node configs
 * take it from here; the browser config has lib.dom's full version instead.
 */
declare namespace WebAssembly {
  type Bytes = ArrayBufferView<ArrayBuffer> | ArrayBuffer;
  type Imports = Record<string, Record<string, unknown>>;

  class Module {
    constructor(bytes: Bytes);
  }
  class Instance {
    constructor(module: Module, imports?: Imports);
    readonly exports: Record<string, unknown>;
  }
  class Global {
    value: unknown;
    valueOf(): unknown;
  }
  function validate(bytes: Bytes): boolean;
  function compile(bytes: Bytes): Promise<Module>;
  function instantiate(module: Module, imports?: Imports): Promise<Instance>;
  function instantiate(bytes: Bytes, imports?: Imports): Promise<{ module: Module; instance: Instance }>;
}
