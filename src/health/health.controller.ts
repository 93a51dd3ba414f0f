import { Controller, Get, Header, HttpStatus, Res } from '@nestjs/common';
import type { Response } from 'express';
import { FilesHealth } from '../files/files.health';
import { FilesMetrics } from '../files/files.metrics';
import { ShutdownState } from './shutdown-state';

@Controller()
export class HealthController {
  constructor(
    private readonly files: FilesHealth,
    private readonly shutdown: ShutdownState,
    private readonly metrics: FilesMetrics,
  ) {}

  /** Liveness: the process is up and serving HTTP. */
  @Get('healthz')
  healthz(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /** Readiness: PostgreSQL and storage answer, and the process is not shutting down. */
  @Get('readyz')
  async readyz(@Res({ passthrough: true }) response: Response) {
    const checks = await this.files.check();
    const ready = !this.shutdown.draining && checks.database.status === 'ok' && checks.storage.status === 'ok';
    response.status(ready ? HttpStatus.OK : HttpStatus.SERVICE_UNAVAILABLE);
    return { status: ready ? 'ok' : 'unavailable', draining: this.shutdown.draining, checks };
  }

  /** Counters of the background jobs (Prometheus text format). Contains no file or owner data. */
  @Get('metrics')
  @Header('Content-Type', 'text/plain; version=0.0.4')
  metricsText(): string {
    return this.metrics.render();
  }
}
