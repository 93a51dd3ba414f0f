import { BASES, startHarness, type Harness } from '../support/http/harness';
import { clientFor, expectOpenAiError, jsonlBytes, type FileObject } from '../support/http/api';
import { insertPlatformFile } from '../support/http/platform';
import { expectNothingLeftBehind, residue, usageOf } from '../support/http/residue';

/** alice's files are invisible and untouchable for bob, on every endpoint, under both base paths. */
describe('owner isolation', () => {
  let h: Harness;
  let alices: FileObject[];
  let aliceOutput: string;
  let bobs: FileObject[];
  const aliceData = jsonlBytes(300, 1);

  beforeAll(async () => {
    h = await startHarness();
    const api = clientFor(h, BASES[0]);
    // Interleaved, so alice's ids fall between bob's and a leaky cursor would show.
    alices = [];
    bobs = [];
    for (let i = 0; i < 3; i++) {
      alices.push(await api.create(h.alice, { data: aliceData, filename: `alice-${i}.jsonl` }));
      bobs.push(await api.create(h.bob, { filename: `bob-${i}.jsonl` }));
    }
    aliceOutput = (await insertPlatformFile(h, h.alice, { bytes: 50 })).id;
  });
  afterAll(async () => h?.close());

  const idsOf = (body: { data: { id: string }[] }) => body.data.map((f) => f.id);

  describe.each(BASES)('under %s', (base) => {
    const api = () => clientFor(h, base);

    it("answers 404 to bob for alice's file on retrieve, content and delete, and changes nothing", async () => {
      for (const id of [...alices.map((f) => f.id), aliceOutput]) {
        const before = await residue(h);
        for (const res of [await api().retrieve(h.bob, id), await api().content(h.bob, id), await api().delete(h.bob, id)]) {
          expectOpenAiError(res, 404, { code: null, param: 'id' });
          expect(res.body.error.message).toContain(id);
          // Nothing of alice's file leaks into the error.
          expect(JSON.stringify(res.body)).not.toMatch(/alice/);
        }
        await expectNothingLeftBehind(h, before);
      }
      // alice still has all of it.
      const content = await api().content(h.alice, alices[0].id);
      expect(Buffer.compare(content.body as Buffer, aliceData)).toBe(0);
    });

    it("never lists alice's files for bob, with or without a purpose filter", async () => {
      const expected = bobs.map((f) => f.id).reverse();
      expect(idsOf((await api().list(h.bob)).body)).toEqual(expected);
      expect(idsOf((await api().list(h.bob, { purpose: 'batch' })).body)).toEqual(expected);
      expect(idsOf((await api().list(h.bob, { purpose: 'batch-output' })).body)).toEqual([]);
      expect(idsOf((await api().list(h.bob, { order: 'asc', limit: 10000 })).body)).toEqual(bobs.map((f) => f.id));
      expect(idsOf((await api().list(h.carol)).body)).toEqual([]);
    });

    it("uses alice's id as a bob cursor only as a position, never showing alice's files", async () => {
      const desc = await api().list(h.bob, { after: alices[1].id });
      expect(idsOf(desc.body)).toEqual([bobs[0].id]);
      expect(desc.body.has_more).toBe(false);
      const asc = await api().list(h.bob, { after: alices[1].id, order: 'asc', limit: 1 });
      expect(idsOf(asc.body)).toEqual([bobs[1].id]);
      expect(asc.body.has_more).toBe(true);
      const filtered = await api().list(h.bob, { after: alices[2].id, purpose: 'batch' });
      expect(idsOf(filtered.body)).toEqual([bobs[1].id, bobs[0].id]);
      expect(await api().listAllIds(h.bob, { limit: 1 })).toEqual(bobs.map((f) => f.id).reverse());
    });

    it("keeps alice's list to her own files (has_more counts only hers)", async () => {
      const page = await api().list(h.alice, { limit: 4 });
      expect(idsOf(page.body)).toEqual([aliceOutput, ...alices.map((f) => f.id).reverse()]);
      expect(page.body.has_more).toBe(false);
    });
  });

  it("charges each owner only for their own files and lets bob's delete release only bob's bytes", async () => {
    const aliceUsage = await usageOf(h, 'alice');
    expect(aliceUsage).toBe(3 * 300 + 50);
    const victim = await clientFor(h, BASES[1]).create(h.bob, { data: jsonlBytes(10) });
    const bobUsage = await usageOf(h, 'bob');
    expect((await clientFor(h, BASES[1]).delete(h.bob, victim.id)).status).toBe(200);
    expect(await usageOf(h, 'bob')).toBe(bobUsage - 10);
    expect(await usageOf(h, 'alice')).toBe(aliceUsage);
  });
});
