import { Injectable } from '@nestjs/common';
import { Clock } from '../common/clock';
import { OWNER_PATTERN } from '../config/app-config';
import { generateApiKey } from './api-key';
import type { ApiKeyRecord, RevokeResult } from './api-key.types';
import { ApiKeysRepository } from './api-keys.repository';

/** Longest key name; the api_keys table checks the same bound. */
export const MAX_KEY_NAME_LENGTH = 200;

/** A bad owner or name for a new key; `field` names which. */
export class ApiKeyInputError extends Error {
  constructor(
    readonly field: 'owner' | 'name',
    message: string,
  ) {
    super(message);
    this.name = 'ApiKeyInputError';
  }
}

/** A freshly created key: the only moment the key itself exists outside its holder. */
export interface CreatedApiKey {
  key: string;
  record: ApiKeyRecord;
}

/** Creating, listing and revoking managed API keys (what `npm run cli -- keys …` does). */
@Injectable()
export class ApiKeysService {
  constructor(
    private readonly repository: ApiKeysRepository,
    private readonly clock: Clock,
  ) {}

  async create(ownerId: string, name = ''): Promise<CreatedApiKey> {
    assertOwner(ownerId);
    if (name.length > MAX_KEY_NAME_LENGTH) throw new ApiKeyInputError('name', `name must be at most ${MAX_KEY_NAME_LENGTH} characters`);
    // Control characters would garble listings in a terminal.
    if (/[\x00-\x1f\x7f]/.test(name)) throw new ApiKeyInputError('name', 'name must not contain control characters');
    const { key, hash, prefix } = generateApiKey();
    const record = await this.repository.create({ ownerId, name, keyHash: hash, keyPrefix: prefix, createdAt: this.clock.now() });
    return { key, record };
  }

  list(options: { ownerId?: string; includeRevoked?: boolean } = {}): Promise<ApiKeyRecord[]> {
    if (options.ownerId !== undefined) assertOwner(options.ownerId);
    return this.repository.list(options.ownerId, options.includeRevoked ?? false);
  }

  revoke(id: string): Promise<RevokeResult> {
    return this.repository.revoke(id, this.clock.now());
  }
}

function assertOwner(ownerId: string): void {
  if (!OWNER_PATTERN.test(ownerId)) {
    throw new ApiKeyInputError('owner', 'owner must be 1-128 letters, digits, . _ @ - and start with a letter or digit');
  }
}
