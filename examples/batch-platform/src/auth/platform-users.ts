import { Injectable } from '@nestjs/common';
import type { Request } from 'express';
import { PlatformConfig } from '../platform.config';

/**
 * The platform's users and their bearer tokens. These are the platform's own credentials, not
 * files-api API keys: the same token authenticates `/v1/files` (through the owner resolver given
 * to FilesModule) and `/v1/batches` (through PlatformAuthGuard), and the user id it maps to is the
 * files-api owner.
 */
@Injectable()
export class PlatformUsers {
  private readonly byToken: ReadonlyMap<string, string>;

  constructor(config: PlatformConfig) {
    this.byToken = new Map(Object.entries(config.users));
  }

  /** The user whose token the request carries (`Authorization: Bearer <token>`), or null. */
  userOf(request: Request): string | null {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
    return (match && this.byToken.get(match[1])) ?? null;
  }
}
