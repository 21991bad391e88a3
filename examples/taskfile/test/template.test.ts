import { describe, expect, it } from 'vitest';
import { TaskfileError } from '../src/errors.js';
import { renderTemplate } from '../src/template.js';

const functions = { urlsafe: (v: unknown) => String(v).replace(/[^A-Za-z0-9._-]/g, '_') };
const render = (text: string, data: Record<string, string> = {}) =>
  renderTemplate(text, data, { functions, where: 'Taskfile.yml: tasks.build.cache.url' });

describe('renderTemplate', () => {
  it('renders the guide’s cache block', () => {
    const data = { TASK: 'ci/build', CHECKSUM: 'ab12', CI_CACHE_REDIS_URL: ':pw@127.0.0.1:6379' };
    expect(render('oci://harbor.example.com/task-cache/build:{{urlsafe .TASK}}-{{.CHECKSUM}}', data)).toBe(
      'oci://harbor.example.com/task-cache/build:ci_build-ab12',
    );
    expect(render('redis://{{.CI_CACHE_REDIS_URL}}/lock:{{urlsafe .TASK}}-{{.CHECKSUM}}', data)).toBe(
      'redis://:pw@127.0.0.1:6379/lock:ci_build-ab12',
    );
    expect(render('{{ne .CI_CACHE_REDIS_URL ""}}', data)).toBe('true');
    expect(render('{{ne .CI_CACHE_REDIS_URL ""}}', {})).toBe('false');
  });

  it('renders a missing variable as the empty string, as Task does', () => {
    expect(render('a{{.NOPE}}b')).toBe('ab');
  });

  it('supports eq with several operands, not, parentheses, raw strings, trim markers and comments', () => {
    expect(render('{{eq .X "a" "b"}}', { X: 'b' })).toBe('true');
    expect(render('{{eq .X "a" "b"}}', { X: 'c' })).toBe('false');
    expect(render('{{not (eq .X `a`)}}', { X: 'a' })).toBe('false');
    expect(render('x  {{- .X -}}  y', { X: '1' })).toBe('x1y');
    expect(render('{{/* note */}}z')).toBe('z');
    expect(render('{{ "q\\"uote" }}')).toBe('q"uote');
    expect(render('{{true}}')).toBe('true');
  });

  it('keeps text without actions unchanged', () => {
    expect(render('plain } { text')).toBe('plain } { text');
  });

  it.each([
    ['{{.X | urlsafe}}', 'ERR_TEMPLATE_UNSUPPORTED', 'pipelines ("|") are not supported'],
    ['{{if .X}}y{{end}}', 'ERR_TEMPLATE_UNSUPPORTED', '"if" actions are not supported'],
    [
      '{{upper .X}}',
      'ERR_TEMPLATE_UNSUPPORTED',
      'function "upper" is not supported (supported: eq, ne, not, urlsafe)',
    ],
    ['{{$x := 1}}', 'ERR_TEMPLATE_UNSUPPORTED', 'template variables ("$name") are not supported'],
    ['{{.A.B}}', 'ERR_TEMPLATE_UNSUPPORTED', 'nested field ".A.…" is not supported'],
    ['{{.}}', 'ERR_TEMPLATE_UNSUPPORTED', 'only ".NAME" fields are supported'],
    ['{{eq .X 1}}', 'ERR_TEMPLATE_UNSUPPORTED', 'numbers and other literals are not supported'],
    ['{{.X', 'ERR_TEMPLATE_SYNTAX', 'unclosed action'],
    ['{{}}', 'ERR_TEMPLATE_SYNTAX', 'empty action'],
    ['{{"abc}}', 'ERR_TEMPLATE_SYNTAX', 'unterminated string'],
    ['{{(urlsafe .X}}', 'ERR_TEMPLATE_SYNTAX', 'unclosed "("'],
    ['{{.X .Y}}', 'ERR_TEMPLATE_SYNTAX', 'unexpected extra operand'],
    ['{{ne .X}}', 'ERR_TEMPLATE_EXEC', 'ne needs 2 arguments, got 1'],
    ['{{eq .X true}}', 'ERR_TEMPLATE_EXEC', 'eq: incompatible types for comparison'],
  ])('%s → %s', (text, code, message) => {
    let caught: unknown;
    try {
      render(text, { X: 'x' });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(TaskfileError);
    expect((caught as TaskfileError).code).toBe(code);
    expect((caught as TaskfileError).message).toContain(message);
    // The message says where the template is and quotes it.
    expect((caught as TaskfileError).message).toMatch(
      /^Taskfile\.yml: tasks\.build\.cache\.url: template ".*", column \d+: /,
    );
  });

  it('names the column of the problem', () => {
    expect(() => render('abc {{.X | urlsafe}}')).toThrow('column 10: pipelines');
  });
});
