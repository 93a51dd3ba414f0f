import { ApiKeysDatabase } from '../api-keys/api-keys.database';
import { ApiKeysRepository } from '../api-keys/api-keys.repository';
import { ApiKeyInputError, ApiKeysService } from '../api-keys/api-keys.service';
import type { ApiKeyRecord } from '../api-keys/api-key.types';
import { SystemClock } from '../common/clock';
import { databaseConfigFrom, EXIT, parseCommandArgs, UsageError, wantsHelp } from './cli-support';

export const KEYS_USAGE = `usage: npm run cli -- keys create --owner <owner> [--name <name>] [--json]
       npm run cli -- keys list [--owner <owner>] [--all] [--json]
       npm run cli -- keys revoke <id> [--json]

Managed API keys of the standalone service, stored in PostgreSQL (reads only DATABASE_URL).

  create  a new key for <owner> (letters, digits, . _ @ -; at most 128), optionally named
          (a label, at most 200 characters). The key is printed once: only its SHA-256 digest
          is stored, so it cannot be shown again.
  list    id, owner, name, prefix, created, last used and revoked time of each key (never the
          key or its digest); revoked keys only with --all
  revoke  the key <id> stops authenticating, on running instances within
          API_KEY_CACHE_SECONDS; revoking twice is not an error, an unknown id is (status 1)

  --json  machine-readable output on stdout (notes and logs go to stderr)`;

const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `npm run cli -- keys …`: returns the exit status; throws UsageError/ConfigError for the CLI to map. */
export async function runKeysCommand(args: string[]): Promise<number> {
  const [subcommand, ...rest] = args;
  if (wantsHelp(args)) {
    console.log(KEYS_USAGE);
    return EXIT.ok;
  }
  if (subcommand === undefined) throw new UsageError('keys needs a subcommand: create, list or revoke (see --help)');
  switch (subcommand) {
    case 'create': {
      const { values } = parseCommandArgs({
        args: rest,
        options: { owner: { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean' } },
      });
      if (values.owner === undefined) throw new UsageError('keys create needs --owner <owner>');
      const json = values.json === true;
      return withService(async (service) => {
        const { key, record } = await service.create(values.owner!, values.name ?? '');
        printCreated(key, record, json);
        return EXIT.ok;
      });
    }
    case 'list': {
      const { values } = parseCommandArgs({
        args: rest,
        options: { owner: { type: 'string' }, all: { type: 'boolean' }, json: { type: 'boolean' } },
      });
      return withService(async (service) => {
        const keys = await service.list({ ownerId: values.owner, includeRevoked: values.all === true });
        printList(keys, values.json === true);
        return EXIT.ok;
      });
    }
    case 'revoke': {
      const { values, positionals } = parseCommandArgs({ args: rest, options: { json: { type: 'boolean' } }, allowPositionals: true });
      if (positionals.length !== 1) throw new UsageError('keys revoke needs exactly one key id');
      const id = positionals[0];
      if (!ID.test(id)) throw new UsageError(`"${id.slice(0, 80)}" is not an API key id (a UUID, as keys list shows)`);
      return withService(async (service) => {
        const result = await service.revoke(id);
        if (result.status === 'not_found') {
          console.error(`no API key with id ${id}`);
          return EXIT.failure;
        }
        const already = result.status === 'already_revoked';
        if (values.json === true) {
          console.log(JSON.stringify({ ...toJson(result.key), already_revoked: already }, null, 2));
        } else if (already) {
          console.log(`API key ${id} (owner ${result.key.ownerId}) was already revoked at ${iso(result.key.revokedAt)}`);
        } else {
          console.log(
            `revoked API key ${id} (owner ${result.key.ownerId}, ${result.key.prefix}…); running instances ` +
              'stop accepting it within API_KEY_CACHE_SECONDS',
          );
        }
        return EXIT.ok;
      });
    }
    default:
      throw new UsageError(`unknown keys subcommand "${subcommand.slice(0, 40)}": use create, list or revoke`);
  }
}

/** The service over its own one-connection pool, closed whatever happens. */
async function withService(work: (service: ApiKeysService) => Promise<number>): Promise<number> {
  const db = new ApiKeysDatabase({ ...databaseConfigFrom(process.env), poolMax: 1 });
  try {
    return await work(new ApiKeysService(new ApiKeysRepository(db), new SystemClock()));
  } catch (error) {
    if (error instanceof ApiKeyInputError) throw new UsageError(error.message);
    throw error;
  } finally {
    await db.close();
  }
}

function printCreated(key: string, record: ApiKeyRecord, json: boolean): void {
  const note = 'Store this key now: only its SHA-256 digest is kept, so it cannot be shown again.';
  if (json) {
    console.log(JSON.stringify({ ...toJson(record), key }, null, 2));
    console.error(note);
    return;
  }
  console.log(
    [
      `API key created for owner ${record.ownerId}:`,
      '',
      `  ${key}`,
      '',
      `  id:      ${record.id}`,
      `  owner:   ${record.ownerId}`,
      `  name:    ${record.name === '' ? '(none)' : record.name}`,
      `  prefix:  ${record.prefix}`,
      `  created: ${iso(record.createdAt)}`,
      '',
      note,
    ].join('\n'),
  );
}

function printList(keys: ApiKeyRecord[], json: boolean): void {
  if (json) {
    console.log(JSON.stringify(keys.map(toJson), null, 2));
    return;
  }
  if (keys.length === 0) {
    console.log('no API keys');
    return;
  }
  const header = ['ID', 'OWNER', 'NAME', 'PREFIX', 'CREATED', 'LAST USED', 'REVOKED'];
  const rows = keys.map((k) => [k.id, k.ownerId, k.name, k.prefix, iso(k.createdAt), iso(k.lastUsedAt), iso(k.revokedAt)]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  for (const row of [header, ...rows]) console.log(row.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd());
}

/** What --json prints of a key: never the key or its digest. */
function toJson(record: ApiKeyRecord) {
  return {
    id: record.id,
    owner: record.ownerId,
    name: record.name,
    prefix: record.prefix,
    created_at: record.createdAt.toISOString(),
    last_used_at: record.lastUsedAt?.toISOString() ?? null,
    revoked_at: record.revokedAt?.toISOString() ?? null,
  };
}

function iso(date: Date | null): string {
  return date === null ? '-' : date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
