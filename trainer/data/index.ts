/** Corpus loaders: WikiText raw, Cornell Movie-Dialogs, Brown; corpus directory layout. */
export * from './brown.ts';
export * from './cornell.ts';
export * from './corpus-dir.ts';
export * from './read-text.ts';
export * from './wikitext.ts';
export * from './cornell-dialogues.ts';
