import { createParamDecorator, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';
import { PlatformApiError } from '../platform-api.error';
import { PlatformUsers } from './platform-users';

const USER_OF = new WeakMap<Request, string>();

/** Authenticates the platform's own routes with the same tokens FilesModule's owner resolver accepts. */
@Injectable()
export class PlatformAuthGuard implements CanActivate {
  constructor(private readonly users: PlatformUsers) {}

  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<Request>();
    const user = this.users.userOf(request);
    if (user === null) throw PlatformApiError.unauthorized();
    USER_OF.set(request, user);
    return true;
  }
}

/** Controller parameter: the user PlatformAuthGuard authenticated. */
export const CurrentUser = createParamDecorator((_data: unknown, context: ExecutionContext): string => {
  const user = USER_OF.get(context.switchToHttp().getRequest<Request>());
  if (user === undefined) throw new Error('PlatformAuthGuard did not run for this route');
  return user;
});
