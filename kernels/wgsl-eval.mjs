/**
 * A small evaluator for the subset of WGSL the generated kernels use on their per-nonce path:
 * module-scope `const`s, structs, functions made of `let`, `if` and `return`, u32 / i32 / bool
 * scalars and vec2/vec4<u32>, swizzles, `select`, `bitcast`, and the arithmetic, bitwise and
 * comparison operators. It runs the shader text itself (not the generator's model of it) and
 * counts the u32 ALU operations it executes: a binary operator or `select` on an n-lane vector
 * is n operations; swizzles, constructors, bitcasts, member reads and calls are free.
 *
 * Used by kernels/kernel-ops.mjs (`npm run kernel:ops`) and src/pow/kernel-ops.test.ts.
 */

const TOKEN = /\s*(0x[0-9a-fA-F]+u?|\d+u?|[A-Za-z_]\w*|>>|<<|<=|>=|==|!=|&&|\|\||->|[-+*^|&<>(){},;.=[\]!:@])/y;

function tokenize(text) {
  const tokens = [];
  TOKEN.lastIndex = 0;
  const source = text.replace(/\/\/[^\n]*/g, '').replace(/\/\*[\s\S]*?\*\//g, '');
  while (TOKEN.lastIndex < source.length) {
    const start = TOKEN.lastIndex;
    const match = TOKEN.exec(source);
    if (!match) {
      if (/^\s*$/.test(source.slice(start))) break;
      throw new Error(`wgsl-eval: cannot read ${JSON.stringify(source.slice(start, start + 20))}`);
    }
    tokens.push(match[1]);
  }
  return tokens;
}

const u32 = (x) => x >>> 0;
const SWIZZLE = { x: 0, y: 1, z: 2, w: 3 };

/** Parses a WGSL module into its consts, structs and functions (bodies kept as token ranges). */
export function parseModule(text) {
  const tokens = tokenize(text);
  const structs = new Map();
  const functions = new Map();
  const consts = new Map();
  let i = 0;
  const skipBlock = () => {
    // tokens[i] === '{': returns the index after the matching '}'
    let depth = 0;
    do {
      if (tokens[i] === '{') depth++;
      else if (tokens[i] === '}') depth--;
      i++;
    } while (depth > 0);
  };
  while (i < tokens.length) {
    const t = tokens[i];
    if (t === 'struct') {
      const name = tokens[i + 1];
      i += 3;
      const fields = [];
      while (tokens[i] !== '}') {
        fields.push(tokens[i]);
        while (tokens[i] !== ',' && tokens[i] !== '}') {
          if (tokens[i] === '<') {
            let depth = 0;
            do {
              if (tokens[i] === '<') depth++;
              else if (tokens[i] === '>') depth--;
              i++;
            } while (depth > 0);
          } else i++;
        }
        if (tokens[i] === ',') i++;
      }
      i++;
      structs.set(name, fields);
    } else if (t === 'fn') {
      const name = tokens[i + 1];
      i += 3;
      const params = [];
      while (tokens[i] !== ')') {
        params.push(tokens[i]);
        while (tokens[i] !== ',' && tokens[i] !== ')') {
          if (tokens[i] === '(') {
            while (tokens[i] !== ')') i++;
          }
          i++;
        }
        if (tokens[i] === ',') i++;
      }
      while (tokens[i] !== '{') i++;
      const bodyStart = i + 1;
      skipBlock();
      functions.set(name, { params, start: bodyStart, end: i - 1 });
    } else if (t === 'const') {
      const name = tokens[i + 1];
      while (tokens[i] !== '=') i++;
      const start = i + 1;
      while (tokens[i] !== ';') i++;
      consts.set(name, { start, end: i });
      i++;
    } else if (t === '{') {
      skipBlock();
    } else {
      i++;
    }
  }
  return { tokens, structs, functions, consts };
}

/**
 * An evaluator over a parsed module. `globals` supplies module-scope variables (e.g. params as
 * { root: [[...4], [...4]], difficulty: [lo, hi], base: [lo, hi], row_width, count }).
 */
export function createEvaluator(module, globals = {}) {
  const { tokens, structs, functions, consts } = module;
  let ops = 0;
  const constValues = new Map();

  function binary(op, a, b) {
    if (Array.isArray(a) || Array.isArray(b)) {
      const n = Array.isArray(a) ? a.length : b.length;
      const at = (v, k) => (Array.isArray(v) ? v[k] : v);
      return Array.from({ length: n }, (_, k) => binary(op, at(a, k), at(b, k)));
    }
    ops++;
    switch (op) {
      case '+':
        return u32(a + b);
      case '-':
        return u32(a - b);
      case '*':
        return u32(Math.imul(a, b));
      case '^':
        return u32(a ^ b);
      case '|':
        return u32(a | b);
      case '&':
        return u32(a & b);
      case '>>':
        return a >>> b;
      case '<<':
        return u32(a << b);
      case '<':
        return a < b;
      case '>':
        return a > b;
      case '<=':
        return a <= b;
      case '>=':
        return a >= b;
      case '==':
        return a === b;
      case '!=':
        return a !== b;
      case '&&':
        return a && b;
      case '||':
        return a || b;
    }
    throw new Error(`wgsl-eval: operator ${op}`);
  }

  const LEVELS = [['||'], ['&&'], ['<', '>', '<=', '>=', '==', '!='], ['|'], ['^'], ['&'], ['<<', '>>'], ['+', '-'], ['*']];

  /** Expression parser + evaluator over tokens from position `pos` (scope: name -> value). */
  function expression(state, scope, level = 0) {
    if (level === LEVELS.length) return unary(state, scope);
    let left = expression(state, scope, level + 1);
    while (LEVELS[level].includes(tokens[state.pos])) {
      const op = tokens[state.pos++];
      const right = expression(state, scope, level + 1);
      left = binary(op, left, right);
    }
    return left;
  }

  function unary(state, scope) {
    if (tokens[state.pos] === '!') {
      state.pos++;
      ops++;
      return !unary(state, scope);
    }
    return postfix(state, scope);
  }

  function args(state, scope) {
    const out = [];
    state.pos++; // (
    while (tokens[state.pos] !== ')') {
      out.push(expression(state, scope));
      if (tokens[state.pos] === ',') state.pos++;
    }
    state.pos++; // )
    return out;
  }

  function skipTemplate(state) {
    const start = state.pos;
    let depth = 0;
    do {
      if (tokens[state.pos] === '<') depth++;
      else if (tokens[state.pos] === '>') depth--;
      state.pos++;
    } while (depth > 0);
    return tokens.slice(start + 1, state.pos - 1).join('');
  }

  function primary(state, scope) {
    const t = tokens[state.pos++];
    if (t === '(') {
      const value = expression(state, scope);
      state.pos++; // )
      return value;
    }
    if (/^(0x[0-9a-fA-F]+|\d+)u?$/.test(t)) return Number(t.replace(/u$/, ''));
    if (t === 'true' || t === 'false') return t === 'true';
    if (t === 'vec2' || t === 'vec4' || t === 'vec3') {
      const lanes = Number(t.slice(3));
      if (tokens[state.pos] === '<') skipTemplate(state);
      const parts = args(state, scope).flatMap((v) => (Array.isArray(v) ? v : [v]));
      return parts.length === 1 ? Array(lanes).fill(parts[0]) : parts;
    }
    if (t === 'bitcast') {
      const type = skipTemplate(state);
      const [v] = args(state, scope);
      const cast = type === 'i32' ? (x) => x | 0 : (x) => x >>> 0;
      return Array.isArray(v) ? v.map(cast) : cast(v);
    }
    if (t === 'select') {
      const [f, tr, cond] = args(state, scope);
      if (Array.isArray(f)) {
        ops += f.length;
        return f.map((x, k) => ((Array.isArray(cond) ? cond[k] : cond) ? tr[k] : x));
      }
      ops++;
      return cond ? tr : f;
    }
    if (t === 'u32' && tokens[state.pos] === '(') {
      const [v] = args(state, scope);
      ops++;
      return typeof v === 'boolean' ? (v ? 1 : 0) : v >>> 0;
    }
    if (structs.has(t) && tokens[state.pos] === '(') {
      const values = args(state, scope);
      return Object.fromEntries(structs.get(t).map((name, k) => [name, values[k]]));
    }
    if (functions.has(t) && tokens[state.pos] === '(') return call(t, args(state, scope));
    if (scope.has(t)) return scope.get(t);
    if (consts.has(t)) {
      if (!constValues.has(t)) {
        const { start } = consts.get(t);
        constValues.set(t, expression({ pos: start }, new Map()));
      }
      return constValues.get(t);
    }
    if (t in globals) return globals[t];
    throw new Error(`wgsl-eval: unknown name ${t}`);
  }

  function postfix(state, scope) {
    let value = primary(state, scope);
    for (;;) {
      if (tokens[state.pos] === '.') {
        const member = tokens[state.pos + 1];
        state.pos += 2;
        if (Array.isArray(value) && /^[xyzw]+$/.test(member)) {
          const picked = [...member].map((c) => value[SWIZZLE[c]]);
          value = picked.length === 1 ? picked[0] : picked;
        } else {
          value = value[member];
        }
      } else if (tokens[state.pos] === '[') {
        state.pos++;
        const index = expression(state, scope);
        state.pos++; // ]
        value = value[index];
      } else {
        return value;
      }
    }
  }

  /** Runs statements from state.pos to `end`; returns { value } on return, else undefined. */
  function block(state, end, scope) {
    while (state.pos < end) {
      const t = tokens[state.pos];
      if (t === 'let' || t === 'var') {
        const name = tokens[state.pos + 1];
        while (tokens[state.pos] !== '=') state.pos++;
        state.pos++;
        scope.set(name, expression(state, scope));
        state.pos++; // ;
      } else if (t === 'return') {
        state.pos++;
        return { value: expression(state, scope) };
      } else if (t === 'if') {
        state.pos++;
        const condition = expression(state, scope);
        const open = state.pos; // '{'
        let depth = 0;
        let close = open;
        do {
          if (tokens[close] === '{') depth++;
          else if (tokens[close] === '}') depth--;
          close++;
        } while (depth > 0);
        if (condition) {
          state.pos = open + 1;
          const result = block(state, close - 1, new Map(scope));
          if (result) return result;
        }
        state.pos = close;
        if (tokens[state.pos] === 'else') throw new Error('wgsl-eval: else is not supported');
      } else {
        throw new Error(`wgsl-eval: statement starting with ${t}`);
      }
    }
    return undefined;
  }

  function call(name, values) {
    const fn = functions.get(name);
    if (!fn) throw new Error(`wgsl-eval: no function ${name}`);
    const scope = new Map(fn.params.map((p, k) => [p, values[k]]));
    const result = block({ pos: fn.start }, fn.end, scope);
    return result?.value;
  }

  return {
    call,
    /** Operations executed since the last reset. */
    get ops() {
      return ops;
    },
    resetOps() {
      ops = 0;
    },
  };
}
