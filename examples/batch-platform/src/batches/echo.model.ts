import { Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { PlatformConfig } from '../platform.config';

/**
 * Stands in for inference: a chat completion that repeats the last message, or the request echoed
 * for other endpoints. Replace it with real model calls.
 */
@Injectable()
export class EchoModel {
  constructor(private readonly config: PlatformConfig) {}

  async respond(endpoint: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.config.batches.requestLatencyMs > 0) await sleep(this.config.batches.requestLatencyMs);
    if (endpoint !== '/v1/chat/completions') return { object: 'echo', endpoint, request: body };
    const messages = Array.isArray(body.messages) ? (body.messages as { content?: unknown }[]) : [];
    const last = messages.at(-1)?.content;
    return {
      id: `chatcmpl-${randomBytes(12).toString('hex')}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: typeof body.model === 'string' ? body.model : 'echo',
      choices: [
        { index: 0, message: { role: 'assistant', content: typeof last === 'string' ? last : '' }, finish_reason: 'stop' },
      ],
      usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
    };
  }
}
