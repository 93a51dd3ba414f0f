import { Injectable, PipeTransform } from '@nestjs/common';
import { parseFileId } from './file-id';
import { ALL_PURPOSES, type ListQuery } from './file.types';
import { FilesError } from './files.errors';

export const MAX_LIST_LIMIT = 10_000;

/** Validates `GET /files` query parameters; unknown parameters are ignored, as OpenAI does. */
@Injectable()
export class ListQueryPipe implements PipeTransform<Record<string, unknown>, ListQuery> {
  transform(query: Record<string, unknown>): ListQuery {
    return parseListQuery(query ?? {});
  }
}

export function parseListQuery(query: Record<string, unknown>): ListQuery {
  const single = (name: string): string | undefined => {
    const value = query[name];
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw FilesError.invalid(name, `'${name}' must be given at most once.`);
    return value;
  };

  const rawLimit = single('limit');
  let limit = MAX_LIST_LIMIT;
  if (rawLimit !== undefined) {
    limit = /^\d{1,6}$/.test(rawLimit) ? Number(rawLimit) : NaN;
    if (!(limit >= 1 && limit <= MAX_LIST_LIMIT)) {
      throw FilesError.invalid('limit', `Invalid 'limit': ${quote(rawLimit)}. Expected an integer between 1 and ${MAX_LIST_LIMIT}.`);
    }
  }

  const order = single('order') ?? 'desc';
  if (order !== 'asc' && order !== 'desc') {
    throw FilesError.invalid('order', `Invalid 'order': ${quote(order)}. Expected 'asc' or 'desc'.`);
  }

  const after = single('after');
  if (after !== undefined && parseFileId(after) === null) {
    throw FilesError.invalid('after', `Invalid 'after': ${quote(after)}. Expected a file id (file_…).`);
  }

  // OpenAI spells the output purpose `batch_output`; files here carry DeepInfra's `batch-output`.
  // The filter accepts both, so an openai-SDK client filtering with OpenAI's name finds them.
  const rawPurpose = single('purpose');
  const purpose = rawPurpose === 'batch_output' ? 'batch-output' : rawPurpose;
  if (purpose !== undefined && !(ALL_PURPOSES as readonly string[]).includes(purpose)) {
    throw FilesError.invalid('purpose', `Invalid 'purpose': ${quote(purpose)}. Expected one of: ${ALL_PURPOSES.join(', ')}.`);
  }

  return { limit, order, after, purpose };
}

function quote(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}
