import { createHash } from 'node:crypto';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MeteredStream } from '../../src/files/upload/metered-stream';

class LimitError extends Error {}

/** Pipes `chunks` through a meter with `limit`; reports what came out and how it ended. */
async function meter(chunks: Buffer[], limit: number) {
  const onLimit = jest.fn(() => new LimitError(`over ${limit}`));
  const stream = new MeteredStream(limit, onLimit);
  const out: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      out.push(chunk);
      callback();
    },
  });
  const error = await pipeline(Readable.from(chunks, { objectMode: false }), stream, sink).then(
    () => undefined,
    (e: unknown) => e,
  );
  return { stream, onLimit, error, output: Buffer.concat(out) };
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const bytes = (n: number, fill = 0x61) => Buffer.alloc(n, fill);

describe(MeteredStream.name, () => {
  it('passes the bytes through unchanged, counting and hashing them across chunks', async () => {
    const chunks = [Buffer.from('{"custom_id":'), Buffer.from('"é"}\n'), bytes(70_000, 0x7a), Buffer.from([0, 255, 1])];
    const all = Buffer.concat(chunks);
    const { stream, error, output } = await meter(chunks, 1_000_000);
    expect(error).toBeUndefined();
    expect(output.equals(all)).toBe(true);
    expect(stream.bytes).toBe(all.length);
    expect(stream.sha256).toBe(sha256(all));
  });

  it('hashes the same content to the same digest however it is split', async () => {
    const data = Buffer.from('the same content, split differently');
    const whole = await meter([data], 100);
    const split = await meter([data.subarray(0, 1), data.subarray(1, 20), data.subarray(20)], 100);
    expect(split.stream.sha256).toBe(whole.stream.sha256);
    expect(whole.stream.sha256).toBe(sha256(data));
  });

  it('counts and hashes an empty stream', async () => {
    const { stream, error } = await meter([], 10);
    expect(error).toBeUndefined();
    expect(stream.bytes).toBe(0);
    expect(stream.sha256).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('lets exactly `limit` bytes through', async () => {
    const { stream, error, onLimit } = await meter([bytes(6), bytes(4)], 10);
    expect(error).toBeUndefined();
    expect(stream.bytes).toBe(10);
    expect(onLimit).not.toHaveBeenCalled();
  });

  it('fails with the onLimit error at limit + 1 bytes', async () => {
    const { error, onLimit } = await meter([bytes(10), bytes(1)], 10);
    expect(error).toBeInstanceOf(LimitError);
    expect(onLimit).toHaveBeenCalledTimes(1);
    expect(error).toBe(onLimit.mock.results[0].value);
  });

  it('fails on the chunk that crosses the limit and forwards none of it', async () => {
    const { error, output } = await meter([bytes(4, 0x31), bytes(4, 0x32), bytes(4, 0x33)], 10);
    expect(error).toBeInstanceOf(LimitError);
    expect(output.equals(Buffer.concat([bytes(4, 0x31), bytes(4, 0x32)]))).toBe(true);
  });

  it('fails on a single chunk larger than the limit, forwarding nothing', async () => {
    const { error, output } = await meter([bytes(1_000)], 999);
    expect(error).toBeInstanceOf(LimitError);
    expect(output.length).toBe(0);
  });

  it('with a limit of 0 passes an empty stream and fails on the first byte', async () => {
    expect((await meter([], 0)).error).toBeUndefined();
    expect((await meter([bytes(1)], 0)).error).toBeInstanceOf(LimitError);
  });

  it('stops at the limit without reading the rest of an endless source', async () => {
    const onLimit = () => new LimitError('over');
    const stream = new MeteredStream(1024, onLimit);
    let produced = 0;
    const endless = new Readable({
      read() {
        produced += 256;
        this.push(bytes(256));
      },
    });
    await expect(pipeline(endless, stream, new PassThrough().resume())).rejects.toBeInstanceOf(LimitError);
    expect(produced).toBeLessThan(64 * 1024);
  });

  it('refuses to report a digest before the stream has ended', () => {
    const stream = new MeteredStream(10, () => new LimitError('over'));
    stream.write(bytes(3));
    expect(stream.bytes).toBe(3);
    expect(() => stream.sha256).toThrow(/not ended/);
    stream.destroy();
  });
});
