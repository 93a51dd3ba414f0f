import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';

const OWNER = Symbol('files-api.owner');

type WithOwner = Request & { [OWNER]?: string };

export function setOwner(request: Request, ownerId: string): void {
  (request as WithOwner)[OWNER] = ownerId;
}

/** The authenticated owner, if any (for logs). */
export function maybeOwnerOf(request: Request): string | undefined {
  return (request as WithOwner)[OWNER];
}

/** The owner FilesAuthGuard authenticated; throws if the guard did not run (a wiring bug). */
export function ownerOf(request: Request): string {
  const owner = (request as WithOwner)[OWNER];
  if (owner === undefined) throw new Error('request has no authenticated owner');
  return owner;
}

/** Controller parameter: the authenticated owner. */
export const Owner = createParamDecorator((_data: unknown, context: ExecutionContext): string =>
  ownerOf(context.switchToHttp().getRequest<Request>()),
);
