import { FilesErrorCode } from '../../src/files/files.errors';
import { UploadSlots } from '../../src/files/upload/upload-slots';
import { thrownFilesError } from './support/expect-files-error';

function expectTooMany(run: () => unknown): void {
  const error = thrownFilesError(run);
  expect(error.code).toBe(FilesErrorCode.TooManyUploads);
  expect(error.retryAfterSeconds).toBeGreaterThanOrEqual(1);
}

describe(UploadSlots.name, () => {
  it('gives an owner up to its cap of slots, then refuses with 429 and Retry-After', () => {
    const slots = new UploadSlots(10, 2);
    slots.acquire('alice');
    slots.acquire('alice');
    expectTooMany(() => slots.acquire('alice'));
    expect(slots.inProgress).toBe(2);
  });

  it('keeps owners apart: one at its cap does not block another', () => {
    const slots = new UploadSlots(10, 1);
    slots.acquire('alice');
    expect(() => slots.acquire('bob')).not.toThrow();
  });

  it('refuses everyone once the instance-wide cap is reached', () => {
    const slots = new UploadSlots(3, 2);
    slots.acquire('alice');
    slots.acquire('alice');
    slots.acquire('bob');
    expectTooMany(() => slots.acquire('carol'));
    expect(slots.inProgress).toBe(3);
  });

  it('frees the slot on release, for the owner and the instance', () => {
    const slots = new UploadSlots(1, 1);
    const release = slots.acquire('alice');
    release();
    expect(slots.inProgress).toBe(0);
    expect(() => slots.acquire('bob')).not.toThrow();
  });

  it('ignores a second release of the same slot', () => {
    const slots = new UploadSlots(10, 2);
    const first = slots.acquire('alice');
    slots.acquire('alice');
    first();
    first();
    expect(slots.inProgress).toBe(1);
    slots.acquire('alice');
    // Had the double release freed the other slot too, a third would now be granted.
    expectTooMany(() => slots.acquire('alice'));
  });

  it('does not count a refused request', () => {
    const slots = new UploadSlots(1, 1);
    const release = slots.acquire('alice');
    expectTooMany(() => slots.acquire('alice'));
    expectTooMany(() => slots.acquire('bob'));
    release();
    expect(slots.inProgress).toBe(0);
    expect(() => slots.acquire('alice')).not.toThrow();
  });
});
