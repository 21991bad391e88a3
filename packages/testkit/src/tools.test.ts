import { describe, expect, it } from 'vitest';
import { TestkitError } from './errors.js';
import { missingTools, missingToolsError, onPath, packagesFor, REQUIRED_TOOLS } from './internal/tools.js';

describe('global setup tool check', () => {
  it('finds every required tool on this machine', () => {
    expect(missingTools()).toEqual([]);
    expect(onPath('redis-server')).toBe(true);
  });

  it('reports every tool as missing on an empty PATH', () => {
    expect(missingTools('')).toEqual(Object.keys(REQUIRED_TOOLS));
    expect(onPath('redis-server', '/nonexistent')).toBe(false);
  });

  it('names the exact Debian packages to install', () => {
    expect(packagesFor(['htpasswd', 'redis-server', 'docker-registry'])).toEqual([
      'apache2-utils',
      'redis-server',
      'docker-registry',
    ]);
    const error = missingToolsError(['htpasswd', 'docker-registry']);
    expect(error).toBeInstanceOf(TestkitError);
    expect(error.code).toBe('TESTKIT_ERR_MISSING_TOOLS');
    expect(error.message).toContain('htpasswd (Debian package apache2-utils)');
    expect(error.message).toContain('sudo apt-get install -y apache2-utils docker-registry');
  });
});
