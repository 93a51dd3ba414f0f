import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { CONFIG_DEFAULTS } from '../../src/config/app-config';

const README = readFileSync(path.resolve(__dirname, '../../README.md'), 'utf8');

/** Variables named in the first column of the README's configuration table. */
function documentedVariables(): Map<string, string> {
  const section = README.slice(README.indexOf('## Configuration'), README.indexOf('## Operations'));
  const rows = [...section.matchAll(/^\| `([A-Z0-9_]+)` \| ([^|]*) \|/gm)];
  return new Map(rows.map(([, name, defaultCell]) => [name, defaultCell.trim()]));
}

describe('README', () => {
  it('documents exactly the variables the configuration reads', () => {
    expect([...documentedVariables().keys()].sort()).toEqual(Object.keys(CONFIG_DEFAULTS).sort());
  });

  it('states each documented default as the configuration has it', () => {
    for (const [name, cell] of documentedVariables()) {
      const actual = CONFIG_DEFAULTS[name as keyof typeof CONFIG_DEFAULTS];
      if (actual === '') continue; // required or SDK default: described in words
      expect({ name, cell: cell.replace(/`/g, '').split(' ')[0] }).toEqual({ name, cell: actual });
    }
  });

  it('gives npm test as the test command that .ci/run calls', () => {
    expect(README).toMatch(/The test command itself is \*\*`npm test`\*\*/);
    expect(readFileSync(path.resolve(__dirname, '../../.ci/run'), 'utf8')).toMatch(/^\s*npm test\b/m);
  });
});
