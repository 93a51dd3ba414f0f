import type { ListOrder, ListQuery } from '../../src/files/file.types';
import { FilesRepository } from '../../src/files/files.repository';
import { HOUR_MS, newOwner, openRepository, seedFile, type RepositoryFixture, type SeededFile } from '../support/files-db';

describe(`${FilesRepository.name} pagination`, () => {
  let f: RepositoryFixture;
  let repository: FilesRepository;
  beforeAll(async () => {
    f = await openRepository();
    repository = f.repository;
  });
  afterAll(async () => f?.close());

  /** `count` files of `owner`, 1 ms apart from `t0`, interleaved with another owner's files. */
  async function seedOwnerFiles(owner: string, count: number, t0 = Date.now(), options: { lifetimeMs?: number } = {}): Promise<SeededFile[]> {
    const stranger = newOwner('stranger');
    const files: SeededFile[] = [];
    for (let i = 0; i < count; i++) {
      files.push(await seedFile(repository, owner, { createdAtMs: t0 + 2 * i, ...options }));
      await seedFile(repository, stranger, { createdAtMs: t0 + 2 * i + 1 });
    }
    return files;
  }

  /** Ids in the order a listing must return them. */
  const ordered = (files: { id: string }[], order: ListOrder) => {
    const ids = files.map((file) => file.id).sort();
    return order === 'asc' ? ids : ids.reverse();
  };

  /** Every page from the start, following `after` = the last id of each page. */
  async function pageThrough(owner: string, query: Omit<ListQuery, 'after'>, now: Date, between?: () => Promise<void>) {
    const pages: { ids: string[]; hasMore: boolean }[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await repository.listPage(owner, { ...query, after }, now);
      pages.push({ ids: page.files.map((file) => file.id), hasMore: page.hasMore });
      for (const file of page.files) expect(file.ownerId).toBe(owner);
      if (!page.hasMore) return pages;
      after = page.files[page.files.length - 1].id;
      await between?.();
    }
  }

  it.each<ListOrder>(['asc', 'desc'])('covers every visible file exactly once, in %s id order, with exact hasMore', async (order) => {
    const owner = newOwner();
    const files = await seedOwnerFiles(owner, 9);
    const now = new Date(files[0].createdAt.getTime() + 1000);
    const pages = await pageThrough(owner, { limit: 3, order }, now);
    // 9 files in pages of 3: three full pages, and the last one says there is no more.
    expect(pages.map((p) => [p.ids.length, p.hasMore])).toEqual([
      [3, true],
      [3, true],
      [3, false],
    ]);
    expect(pages.flatMap((p) => p.ids)).toEqual(ordered(files, order));

    for (const limit of [1, 4, 8, 9, 10, 10_000]) {
      const all = (await pageThrough(owner, { limit, order }, now)).flatMap((p) => p.ids);
      expect(all).toEqual(ordered(files, order));
    }
    const whole = await repository.listPage(owner, { limit: 9, order }, now);
    expect(whole.hasMore).toBe(false);
    expect((await repository.listPage(owner, { limit: 8, order }, now)).hasMore).toBe(true);
  });

  it('returns an empty last page after the last file', async () => {
    const owner = newOwner();
    const files = await seedOwnerFiles(owner, 2);
    const now = new Date(files[0].createdAt.getTime() + 1000);
    const last = ordered(files, 'desc')[1];
    expect(await repository.listPage(owner, { limit: 5, order: 'desc', after: last }, now)).toEqual({ files: [], hasMore: false });
    expect(await repository.listPage(newOwner('empty'), { limit: 5, order: 'desc' }, now)).toEqual({ files: [], hasMore: false });
  });

  it.each<ListOrder>(['asc', 'desc'])('continues from the position of a deleted file used as `after` (%s)', async (order) => {
    const owner = newOwner();
    const files = await seedOwnerFiles(owner, 6);
    const now = new Date(files[0].createdAt.getTime() + 1000);
    const ids = ordered(files, order);
    const cursor = files.find((file) => file.id === ids[2])!;
    await repository.tombstone(owner, cursor.uuid, now);
    await repository.deleteTombstone(cursor.uuid);
    const page = await repository.listPage(owner, { limit: 10, order, after: cursor.id }, now);
    expect(page.files.map((file) => file.id)).toEqual(ids.slice(3));
    expect(page.hasMore).toBe(false);
  });

  it.each<ListOrder>(['asc', 'desc'])('continues from the position of an expired file used as `after` (%s)', async (order) => {
    const owner = newOwner();
    const t0 = Date.now();
    const lasting = await seedOwnerFiles(owner, 4, t0, { lifetimeMs: 10 * HOUR_MS });
    const expiring = await seedFile(repository, owner, { createdAtMs: t0 + 3, lifetimeMs: HOUR_MS });
    const later = new Date(t0 + 2 * HOUR_MS);
    const all = ordered([...lasting, expiring], order);
    const position = all.indexOf(expiring.id);
    const page = await repository.listPage(owner, { limit: 10, order, after: expiring.id }, later);
    expect(page.files.map((file) => file.id)).toEqual(all.slice(position + 1));
    // And the expired file itself is never listed.
    expect((await pageThrough(owner, { limit: 2, order }, later)).flatMap((p) => p.ids)).toEqual(ordered(lasting, order));
  });

  it('filters by purpose without losing the keyset position', async () => {
    const owner = newOwner();
    const t0 = Date.now();
    const batch: SeededFile[] = [];
    for (let i = 0; i < 6; i++) {
      const purpose = i % 2 === 0 ? 'batch' : 'batch-output';
      const file = await seedFile(repository, owner, { createdAtMs: t0 + i, purpose });
      if (purpose === 'batch') batch.push(file);
    }
    const now = new Date(t0 + 1000);
    const pages = await pageThrough(owner, { limit: 2, order: 'asc', purpose: 'batch' }, now);
    expect(pages.map((p) => p.hasMore)).toEqual([true, false]);
    expect(pages.flatMap((p) => p.ids)).toEqual(ordered(batch, 'asc'));
  });

  it.each<ListOrder>(['asc', 'desc'])(
    'never duplicates or skips existing files while others are inserted concurrently (%s)',
    async (order) => {
      const owner = newOwner();
      const t0 = Date.now() - 60_000;
      // Existing files, 10 ms apart, so that new files can land between them too.
      const existing: SeededFile[] = [];
      for (let i = 0; i < 24; i++) existing.push(await seedFile(repository, owner, { createdAtMs: t0 + 10 * i }));
      const now = new Date(t0 + 120_000);
      let inserted = 0;
      // Uploads that started long ago commit now (ids between existing ones), and brand-new ones.
      const insertSome = async () => {
        const createdAt = [t0 + 10 * randomIndex(24) + 5, t0 - 5, Date.now()];
        await Promise.all(createdAt.map((ms) => seedFile(repository, owner, { createdAtMs: ms, nowMs: now.getTime() })));
        inserted += createdAt.length;
      };
      const background = (async () => {
        for (let i = 0; i < 6; i++) await insertSome();
      })();
      const pages = await pageThrough(owner, { limit: 4, order }, now, insertSome);
      await background;
      expect(inserted).toBeGreaterThan(0);

      const seen = pages.flatMap((p) => p.ids);
      expect(new Set(seen).size).toBe(seen.length);
      const expected = ordered(existing, order);
      expect(seen.filter((id) => expected.includes(id))).toEqual(expected);
      // Whatever the listing returned is in strict id order.
      expect(seen).toEqual(ordered(seen.map((id) => ({ id })), order));
    },
  );

  it("never shows another owner's files, whatever the cursor", async () => {
    const owner = newOwner();
    const other = newOwner('other');
    const t0 = Date.now();
    const mine = await seedOwnerFiles(owner, 3, t0);
    const theirs = await seedOwnerFiles(other, 3, t0);
    const now = new Date(t0 + 1000);
    for (const order of ['asc', 'desc'] as const) {
      expect((await pageThrough(owner, { limit: 2, order }, now)).flatMap((p) => p.ids)).toEqual(ordered(mine, order));
      const afterTheirs = await repository.listPage(owner, { limit: 10, order, after: theirs[1].id }, now);
      for (const file of afterTheirs.files) expect(file.ownerId).toBe(owner);
    }
    expect(await repository.findVisible(owner, theirs[0].uuid, now)).toBeNull();
    expect(await repository.tombstone(owner, theirs[0].uuid, now)).toBeNull();
    expect(await repository.findVisible(other, theirs[0].uuid, now)).not.toBeNull();
  });
});

function randomIndex(n: number): number {
  return Math.floor(Math.random() * n);
}
