import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import type { Request } from 'express';
import { FilesError, FilesErrorCode } from '../files.errors';
import { setOwner } from './owner';
import { OwnerResolver } from './owner-resolver';

/** Authenticates every Files API request through the OwnerResolver port. */
@Injectable()
export class FilesAuthGuard implements CanActivate {
  constructor(private readonly resolver: OwnerResolver) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<Request>();
    const result = await this.resolver.resolve(request);
    if (typeof result !== 'string') {
      throw new FilesError(
        FilesErrorCode.InvalidApiKey,
        result.reason === 'missing'
          ? "You didn't provide an API key. Provide it in the Authorization header as 'Bearer YOUR_KEY'."
          : 'Incorrect API key provided.',
      );
    }
    setOwner(request, result);
    return true;
  }
}
