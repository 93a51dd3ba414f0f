import { BASES, startHarness, type Harness } from '../support/http/harness';
import { clientFor, expectOpenAiError, jsonlBytes } from '../support/http/api';
import { insertPlatformFile } from '../support/http/platform';
import { residue, rowOf, usageOf } from '../support/http/residue';

describe('DELETE /files/{id}', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => h?.close());

  describe.each(BASES)('under %s', (base) => {
    const api = () => clientFor(h, base);

    it('returns {id, object, deleted}, removes row and bytes, and releases the quota at once', async () => {
      const owner = h.owner();
      const keep = await api().create(owner, { data: jsonlBytes(100) });
      const gone = await api().create(owner, { data: jsonlBytes(250) });
      expect(await usageOf(h, owner.name)).toBe(350);
      const before = await residue(h);

      const res = await api().delete(owner, gone.id);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ id: gone.id, object: 'file', deleted: true });

      expect(await usageOf(h, owner.name)).toBe(100);
      expect(await rowOf(h, gone.id)).toBeUndefined();
      const after = await residue(h);
      expect(after.objects).toEqual(before.objects.filter((o) => o !== `files/${gone.id}`));
      expect(after.objects).toContain(`files/${keep.id}`);
    });

    it('makes the file unreachable for retrieve, content, list and a second delete', async () => {
      const owner = h.owner();
      const keep = await api().create(owner);
      const gone = await api().create(owner);
      expect((await api().delete(owner, gone.id)).status).toBe(200);

      for (const res of [await api().retrieve(owner, gone.id), await api().content(owner, gone.id), await api().delete(owner, gone.id)]) {
        expectOpenAiError(res, 404, { code: null, param: 'id' });
        expect(res.body.error.message).toContain(gone.id);
      }
      const list = await api().list(owner);
      expect(list.body.data.map((f: { id: string }) => f.id)).toEqual([keep.id]);
      expect((await api().retrieve(owner, keep.id)).status).toBe(200);
    });

    it('deletes a platform-created batch-output file and releases its bytes', async () => {
      const owner = h.owner();
      const output = await insertPlatformFile(h, owner, { bytes: 500 });
      expect(await usageOf(h, owner.name)).toBe(500);
      const res = await api().delete(owner, output.id);
      expect(res.body).toEqual({ id: output.id, object: 'file', deleted: true });
      expect(await usageOf(h, owner.name)).toBe(0);
      expect((await residue(h)).objects).not.toContain(`files/${output.id}`);
    });

    it('lets exactly one of two concurrent deletes of the same file succeed', async () => {
      const owner = h.owner();
      const file = await api().create(owner, { data: jsonlBytes(64) });
      const results = await Promise.all([api().delete(owner, file.id), api().delete(owner, file.id)]);
      expect(results.map((r) => r.status).sort()).toEqual([200, 404]);
      expect(await usageOf(h, owner.name)).toBe(0);
    });
  });
});
