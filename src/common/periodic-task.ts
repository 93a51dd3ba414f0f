import type { Logger } from '@nestjs/common';
import type { SchedulerRegistry } from '@nestjs/schedule';

/**
 * A background job on a fixed interval, registered with @nestjs/schedule: a tick while the
 * previous run is still going is skipped, a failed run is logged (never thrown), and `stop`
 * waits for the run in progress so shutdown never cuts one in half.
 */
export class PeriodicTask {
  private running?: Promise<void>;

  constructor(
    private readonly scheduler: SchedulerRegistry,
    private readonly name: string,
    private readonly logger: Logger,
    private readonly task: () => Promise<void>,
  ) {}

  /** Schedules the task every `seconds`; 0 or less leaves it off. */
  start(seconds: number): void {
    if (seconds <= 0) return;
    this.scheduler.addInterval(this.name, setInterval(() => void this.runOnce(), seconds * 1000));
  }

  async runOnce(): Promise<void> {
    if (this.running) return;
    this.running = this.task()
      .catch((error: Error) => this.logger.warn(`${this.name} failed: ${error.message}`))
      .finally(() => (this.running = undefined));
    await this.running;
  }

  async stop(): Promise<void> {
    if (this.scheduler.doesExist('interval', this.name)) this.scheduler.deleteInterval(this.name);
    await this.running;
  }
}
