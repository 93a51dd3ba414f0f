import { BASES, startHarness, type Harness, type TestOwner } from '../support/http/harness';
import { clientFor, expectOpenAiError, type FileList, type FileObject } from '../support/http/api';
import { insertPlatformFile } from '../support/http/platform';

describe('GET /files', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => h?.close());

  /** `n` files of one owner, uploaded one after another (so creation order is their order). */
  async function filesOf(owner: TestOwner, n: number, base: string = BASES[0]): Promise<FileObject[]> {
    const out: FileObject[] = [];
    for (let i = 0; i < n; i++) out.push(await clientFor(h, base).create(owner, { filename: `f${i}.jsonl` }));
    return out;
  }
  const ids = (files: { id: string }[]) => files.map((f) => f.id);

  describe.each(BASES)('under %s', (base) => {
    const api = () => clientFor(h, base);

    it('returns an empty list with null first_id/last_id for an owner without files', async () => {
      const res = await api().list(h.owner());
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ object: 'list', data: [], first_id: null, last_id: null, has_more: false });
    });

    it('lists newest first by default, as full FileObjects, all of them (default limit)', async () => {
      const owner = h.owner();
      const files = await filesOf(owner, 3);
      const res = await api().list(owner);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        object: 'list',
        data: [...files].reverse(),
        first_id: files[2].id,
        last_id: files[0].id,
        has_more: false,
      });
    });

    it('returns more than a typical page size (20, 100) by default: the default limit is 10000', async () => {
      const owner = h.owner();
      const made: string[] = [];
      for (let i = 0; i < 101; i++) made.push((await insertPlatformFile(h, owner, { bytes: 1 })).id);
      const res = await api().list(owner);
      expect(res.body.data).toHaveLength(101);
      expect(res.body.has_more).toBe(false);
      // Ids sort as they were issued (several may share a millisecond, then their random part decides).
      expect(ids(res.body.data)).toEqual([...made].sort().reverse());
    });

    it('lists oldest first with order=asc and newest first with order=desc', async () => {
      const owner = h.owner();
      const files = await filesOf(owner, 3);
      expect(ids((await api().list(owner, { order: 'asc' })).body.data)).toEqual(ids(files));
      expect(ids((await api().list(owner, { order: 'desc' })).body.data)).toEqual(ids(files).reverse());
    });

    it.each(['0', '10001', '-1', 'abc', '1.5', '', '1e3', ' 5'])('refuses limit=%p with 400 invalid_value (param limit)', async (limit) => {
      expectOpenAiError(await api().list(h.alice, { limit }), 400, { code: 'invalid_value', param: 'limit' });
    });

    it.each(['1', '10000'])('accepts limit=%s', async (limit) => {
      const owner = h.owner();
      await filesOf(owner, 2);
      const res = await api().list(owner, { limit });
      expect(res.status).toBe(200);
      expect(res.body.data).toHaveLength(Math.min(2, Number(limit)));
      expect(res.body.has_more).toBe(limit === '1');
    });

    it.each(['random', 'DESC', 'ascending', ''])('refuses order=%p with 400 invalid_value (param order)', async (order) => {
      expectOpenAiError(await api().list(h.alice, { order }), 400, { code: 'invalid_value', param: 'order' });
    });

    it.each(['file-abc123', 'abc', 'file_', `file_${'u'.repeat(26)}`, `file_${'0'.repeat(27)}`, 'file_8zzzzzzzzzzzzzzzzzzzzzzzzz'])(
      'refuses after=%p with 400 invalid_value (param after)',
      async (after) => {
        expectOpenAiError(await api().list(h.alice, { after }), 400, { code: 'invalid_value', param: 'after' });
      },
    );

    it.each(['bogus', 'Batch', ''])('refuses purpose=%p with 400 invalid_value (param purpose)', async (purpose) => {
      expectOpenAiError(await api().list(h.alice, { purpose }), 400, { code: 'invalid_value', param: 'purpose' });
    });

    it.each(['limit=1&limit=2', 'order=asc&order=desc', 'purpose=batch&purpose=batch'])('refuses a repeated parameter (%s)', async (query) => {
      const param = query.split('=')[0];
      expectOpenAiError(await api().list(h.alice, query), 400, { code: 'invalid_value', param });
    });

    it('ignores unknown query parameters', async () => {
      const res = await api().list(h.owner(), { foo: 'bar' });
      expect(res.status).toBe(200);
    });

    it('filters by purpose, counting platform-created batch-output files', async () => {
      const owner = h.owner();
      const [upload] = await filesOf(owner, 1);
      const output = await insertPlatformFile(h, owner, { bytes: 42 });
      const byPurpose = async (purpose: string) => ids((await api().list(owner, { purpose })).body.data);
      expect(await byPurpose('batch')).toEqual([upload.id]);
      expect(await byPurpose('batch-output')).toEqual([output.id]);
      expect(await byPurpose('fine-tune')).toEqual([]);
      expect(ids((await api().list(owner)).body.data)).toEqual([output.id, upload.id]);
      const res = await api().list(owner, { purpose: 'batch-output' });
      expect(res.body.data[0]).toMatchObject({ id: output.id, purpose: 'batch-output', bytes: 42, status: 'processed' });
    });

    it('reports has_more exactly: false when the page ends with the last file, true otherwise', async () => {
      const owner = h.owner();
      await filesOf(owner, 3);
      expect((await api().list(owner, { limit: 3 })).body.has_more).toBe(false);
      expect((await api().list(owner, { limit: 4 })).body.has_more).toBe(false);
      expect((await api().list(owner, { limit: 2 })).body.has_more).toBe(true);
    });

    it.each(['desc', 'asc'] as const)('pages through every file exactly once with after (order=%s)', async (order) => {
      const owner = h.owner();
      const files = await filesOf(owner, 5);
      const expected = order === 'asc' ? ids(files) : ids(files).reverse();
      const pages: FileList[] = [];
      let after: string | undefined;
      do {
        const res = await api().list(owner, { order, limit: 2, ...(after ? { after } : {}) });
        expect(res.status).toBe(200);
        pages.push(res.body);
        after = res.body.last_id;
      } while (pages.at(-1)!.has_more);
      expect(pages.map((p) => ids(p.data))).toEqual([expected.slice(0, 2), expected.slice(2, 4), expected.slice(4)]);
      expect(pages.map((p) => p.has_more)).toEqual([true, true, false]);
      for (const page of pages) {
        expect(page.first_id).toBe(page.data[0].id);
        expect(page.last_id).toBe(page.data.at(-1)!.id);
      }
      // After the last file: an empty page.
      expect((await api().list(owner, { order, after: expected[4] })).body).toEqual({
        object: 'list', data: [], first_id: null, last_id: null, has_more: false,
      });
    });

    it.each(['desc', 'asc'] as const)('continues from a cursor whose file was deleted (order=%s)', async (order) => {
      const owner = h.owner();
      const files = await filesOf(owner, 5);
      const expected = order === 'asc' ? ids(files) : ids(files).reverse();
      const first = await api().list(owner, { order, limit: 2 });
      expect(first.body.last_id).toBe(expected[1]);
      expect((await api().delete(owner, expected[1])).status).toBe(200);
      const next = await api().list(owner, { order, limit: 2, after: expected[1] });
      expect(ids(next.body.data)).toEqual(expected.slice(2, 4));
      expect(next.body.has_more).toBe(true);
      expect(await api().listAllIds(owner, { order })).toEqual(expected.filter((id) => id !== expected[1]));
    });

    it('keeps pages stable when files are added between requests', async () => {
      const owner = h.owner();
      const files = await filesOf(owner, 4);
      const desc = await api().list(owner, { limit: 2 });
      const asc = await api().list(owner, { limit: 2, order: 'asc' });
      const added = await api().create(owner);
      // Newest-first: the new file sorts before the cursor, so the next page is unaffected.
      const descNext = await api().list(owner, { limit: 10, after: desc.body.last_id });
      expect(ids(descNext.body.data)).toEqual([files[1].id, files[0].id]);
      // Oldest-first: the new file comes last, after the files not yet seen.
      const ascNext = await api().list(owner, { limit: 10, order: 'asc', after: asc.body.last_id });
      expect(ids(ascNext.body.data)).toEqual([files[2].id, files[3].id, added.id]);
    });
  });

  // Moves the shared clock forward, so it runs last.
  it('continues from a cursor whose file expired, and never lists expired files', async () => {
    const api = clientFor(h, BASES[1]);
    const owner = h.owner();
    const a = await api.create(owner);
    const b = await api.create(owner, { seconds: 3600 });
    const c = await api.create(owner);
    const d = await api.create(owner, { seconds: 3600 });
    const e = await api.create(owner);
    h.t.clock.advance(3601 * 1000);

    expect(ids((await api.list(owner)).body.data)).toEqual([e.id, c.id, a.id]);
    const afterB = await api.list(owner, { after: b.id });
    expect(ids(afterB.body.data)).toEqual([a.id]);
    expect(afterB.body.has_more).toBe(false);
    const afterBAsc = await api.list(owner, { after: b.id, order: 'asc', limit: 1 });
    expect(ids(afterBAsc.body.data)).toEqual([c.id]);
    expect(afterBAsc.body.has_more).toBe(true);
    const afterD = await api.list(owner, { after: d.id, limit: 1 });
    expect(ids(afterD.body.data)).toEqual([c.id]);
    expect(afterD.body.has_more).toBe(true);
    // has_more does not count the expired files still in the table.
    const lastPage = await api.list(owner, { after: c.id, order: 'asc' });
    expect(ids(lastPage.body.data)).toEqual([e.id]);
    expect(lastPage.body.has_more).toBe(false);
    expect((await api.list(owner, { after: e.id, order: 'asc' })).body.has_more).toBe(false);
  });
});
