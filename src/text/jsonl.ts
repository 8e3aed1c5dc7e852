// JSONL text datasets (benchmark prompts, evaluation corpora): one {"text": ...} per line.
import { readFileSync } from 'node:fs';

/** The texts of a JSONL file: one JSON object per line with a "text" (or "prompt") string. */
export function readJsonlTexts(file: string): string[] {
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the dataset ${file}: ${(err as Error).message}`);
  }
  const texts: string[] = [];
  raw.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      throw new Error(`${file}:${i + 1}: not JSON`);
    }
    const o = obj as { text?: unknown; prompt?: unknown };
    const text = typeof o.text === 'string' ? o.text : typeof o.prompt === 'string' ? o.prompt : undefined;
    if (text === undefined) throw new Error(`${file}:${i + 1}: expected an object with a "text" string`);
    texts.push(text);
  });
  if (texts.length === 0) throw new Error(`${file} holds no documents`);
  return texts;
}
