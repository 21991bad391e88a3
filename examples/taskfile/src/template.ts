/**
 * The subset of Go `text/template` that Taskfiles like the guide's use: `{{.VAR}}`, string
 * literals, the functions `urlsafe`, `eq`, `ne`, `not`, parentheses, `{{- … -}}` trim markers and
 * `{{/* comments *\/}}`. Anything else (pipes, `if`/`range`, `$variables`, unknown functions,
 * nested fields) is a {@link TaskfileError} naming what is unsupported and where — never a silent
 * wrong render.
 */
import { TaskfileError } from './errors.js';

/** A template value: Go templates here only ever produce strings and booleans. */
export type TemplateValue = string | boolean;

/** A template function; throws `Error` with a message for bad arguments. */
export type TemplateFunction = (...args: TemplateValue[]) => TemplateValue;

/** Options of {@link renderTemplate}. */
export interface RenderOptions {
  /**
   * Functions callable from the template, by name. `eq`, `ne` and `not` are always present;
   * `urlsafe` must be provided (the runner passes `@task-cache/core`'s).
   * @default {}
   */
  functions?: Readonly<Record<string, TemplateFunction>>;
  /** Where the template comes from, for error messages (e.g. `Taskfile.yml: tasks.build.cmds[0]`). */
  where?: string;
}

const builtins: Record<string, TemplateFunction> = {
  eq: (first, ...rest) => {
    if (first === undefined || rest.length === 0) throw new Error('eq needs at least 2 arguments');
    for (const other of rest) {
      if (typeof other !== typeof first) throw new Error(`eq: incompatible types for comparison`);
      if (other === first) return true;
    }
    return false;
  },
  ne: (...args) => {
    if (args.length !== 2) throw new Error(`ne needs 2 arguments, got ${args.length}`);
    if (typeof args[0] !== typeof args[1]) throw new Error('ne: incompatible types for comparison');
    return args[0] !== args[1];
  },
  not: (...args) => {
    if (args.length !== 1) throw new Error(`not needs 1 argument, got ${args.length}`);
    return !truthy(args[0]!);
  },
};

const KEYWORDS = new Set([
  'if',
  'else',
  'end',
  'range',
  'with',
  'define',
  'template',
  'block',
  'break',
  'continue',
]);

function truthy(value: TemplateValue): boolean {
  return typeof value === 'boolean' ? value : value !== '';
}

type Token =
  | { kind: 'field'; name: string; col: number }
  | { kind: 'string'; value: string; col: number }
  | { kind: 'ident'; name: string; col: number }
  | { kind: 'open' | 'close'; col: number };

/** Renders `text` with `data` (missing keys render as the empty string, as Task does). */
export function renderTemplate(
  text: string,
  data: Readonly<Record<string, TemplateValue | undefined>>,
  options: RenderOptions = {},
): string {
  const functions = { ...builtins, ...options.functions };
  const where = options.where;
  const fail = (
    code: 'ERR_TEMPLATE_SYNTAX' | 'ERR_TEMPLATE_UNSUPPORTED' | 'ERR_TEMPLATE_EXEC',
    col: number,
    msg: string,
    cause?: unknown,
  ) =>
    new TaskfileError(code, `template ${JSON.stringify(text)}, column ${col + 1}: ${msg}`, { where, cause });

  let out = '';
  let pos = 0;
  let trimNext = false;
  while (pos < text.length) {
    const open = text.indexOf('{{', pos);
    let literal = open === -1 ? text.slice(pos) : text.slice(pos, open);
    if (trimNext) literal = literal.replace(/^\s+/, '');
    trimNext = false;
    if (open === -1) {
      out += literal;
      break;
    }
    const close = text.indexOf('}}', open + 2);
    if (close === -1) throw fail('ERR_TEMPLATE_SYNTAX', open, 'unclosed action: "{{" without "}}"');
    let bodyStart = open + 2;
    let bodyEnd = close;
    if (/^-[ \t\r\n]/.test(text.slice(bodyStart, bodyStart + 2))) {
      literal = literal.replace(/\s+$/, '');
      bodyStart += 2;
    }
    if (/[ \t\r\n]-$/.test(text.slice(bodyEnd - 2, bodyEnd))) {
      trimNext = true;
      bodyEnd -= 2;
    }
    out += literal;
    pos = close + 2;
    const body = text.slice(bodyStart, bodyEnd);
    if (/^\s*\/\*[\s\S]*\*\/\s*$/.test(body)) continue; // {{/* comment */}}
    const tokens = tokenize(body, bodyStart, fail);
    if (tokens.length === 0) throw fail('ERR_TEMPLATE_SYNTAX', open, 'empty action "{{}}"');
    let i = 0;
    const evalExpr = (stopAtClose: boolean): TemplateValue => {
      const head = tokens[i];
      if (!head) throw fail('ERR_TEMPLATE_SYNTAX', bodyEnd, 'missing value');
      if (head.kind === 'ident' && head.name !== 'true' && head.name !== 'false') {
        i++;
        const fn = functions[head.name];
        if (!fn) {
          const supported = Object.keys(functions).sort().join(', ');
          throw fail(
            'ERR_TEMPLATE_UNSUPPORTED',
            head.col,
            `function "${head.name}" is not supported (supported: ${supported})`,
          );
        }
        const args: TemplateValue[] = [];
        while (i < tokens.length && tokens[i]!.kind !== 'close') args.push(evalTerm());
        if (!stopAtClose && i < tokens.length)
          throw fail('ERR_TEMPLATE_SYNTAX', tokens[i]!.col, 'unexpected ")"');
        try {
          return fn(...args);
        } catch (error) {
          throw fail('ERR_TEMPLATE_EXEC', head.col, (error as Error).message, error);
        }
      }
      const value = evalTerm();
      const next = tokens[i];
      if (next && !(stopAtClose && next.kind === 'close')) {
        throw fail(
          'ERR_TEMPLATE_SYNTAX',
          next.col,
          'unexpected extra operand (only a function can take arguments)',
        );
      }
      return value;
    };
    const evalTerm = (): TemplateValue => {
      const token = tokens[i++];
      if (!token) throw fail('ERR_TEMPLATE_SYNTAX', bodyEnd, 'missing value');
      switch (token.kind) {
        case 'field':
          return data[token.name] ?? '';
        case 'string':
          return token.value;
        case 'ident':
          if (token.name === 'true' || token.name === 'false') return token.name === 'true';
          throw fail(
            'ERR_TEMPLATE_SYNTAX',
            token.col,
            `function "${token.name}" used as an argument needs parentheses`,
          );
        case 'open': {
          const value = evalExpr(true);
          const closing = tokens[i++];
          if (closing?.kind !== 'close') throw fail('ERR_TEMPLATE_SYNTAX', token.col, 'unclosed "("');
          return value;
        }
        case 'close':
          throw fail('ERR_TEMPLATE_SYNTAX', token.col, 'unexpected ")"');
      }
    };
    const value = evalExpr(false);
    out += typeof value === 'boolean' ? String(value) : value;
  }
  return out;
}

function tokenize(
  body: string,
  offset: number,
  fail: (code: 'ERR_TEMPLATE_SYNTAX' | 'ERR_TEMPLATE_UNSUPPORTED', col: number, msg: string) => TaskfileError,
): Token[] {
  const tokens: Token[] = [];
  let p = 0;
  while (p < body.length) {
    const c = body[p]!;
    const col = offset + p;
    if (/\s/.test(c)) {
      p++;
    } else if (c === '(' || c === ')') {
      tokens.push({ kind: c === '(' ? 'open' : 'close', col });
      p++;
    } else if (c === '.') {
      const m = /^\.([A-Za-z_][A-Za-z0-9_]*)/.exec(body.slice(p));
      if (!m)
        throw fail('ERR_TEMPLATE_UNSUPPORTED', col, 'only ".NAME" fields are supported (not "." alone)');
      if (body[p + m[0].length] === '.') {
        throw fail('ERR_TEMPLATE_UNSUPPORTED', col, `nested field "${m[0]}.…" is not supported`);
      }
      tokens.push({ kind: 'field', name: m[1]!, col });
      p += m[0].length;
    } else if (c === '"') {
      let value = '';
      let q = p + 1;
      for (;;) {
        const ch = body[q];
        if (ch === undefined) throw fail('ERR_TEMPLATE_SYNTAX', col, 'unterminated string');
        if (ch === '"') break;
        if (ch === '\\') {
          const esc = body[q + 1];
          const map: Record<string, string> = { n: '\n', t: '\t', '\\': '\\', '"': '"' };
          if (esc === undefined || !(esc in map)) {
            throw fail('ERR_TEMPLATE_UNSUPPORTED', offset + q, `escape "\\${esc ?? ''}" is not supported`);
          }
          value += map[esc];
          q += 2;
        } else {
          value += ch;
          q++;
        }
      }
      tokens.push({ kind: 'string', value, col });
      p = q + 1;
    } else if (c === '`') {
      const end = body.indexOf('`', p + 1);
      if (end === -1) throw fail('ERR_TEMPLATE_SYNTAX', col, 'unterminated raw string');
      tokens.push({ kind: 'string', value: body.slice(p + 1, end), col });
      p = end + 1;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(body.slice(p))!;
      if (KEYWORDS.has(m[0]))
        throw fail('ERR_TEMPLATE_UNSUPPORTED', col, `"${m[0]}" actions are not supported`);
      tokens.push({ kind: 'ident', name: m[0], col });
      p += m[0].length;
    } else if (c === '|') {
      throw fail(
        'ERR_TEMPLATE_UNSUPPORTED',
        col,
        'pipelines ("|") are not supported; call the function instead',
      );
    } else if (c === '$') {
      throw fail('ERR_TEMPLATE_UNSUPPORTED', col, 'template variables ("$name") are not supported');
    } else {
      throw fail(
        'ERR_TEMPLATE_UNSUPPORTED',
        col,
        `unexpected character ${JSON.stringify(c)} (numbers and other literals are not supported)`,
      );
    }
  }
  return tokens;
}
