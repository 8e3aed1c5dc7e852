// A small XML well-formedness check for the SVG charts: one root element, tags nested and
// closed in order, quoted attributes, entities that XML knows. Returns the root element's name.
export function checkWellFormedXml(xml: string): string {
  let s = xml.replace(/^\uFEFF/, '');
  s = s.replace(/^<\?xml[^?]*\?>\s*/, '');
  const stack: string[] = [];
  let root: string | null = null;
  let i = 0;
  const fail = (why: string): never => {
    throw new Error(`not well-formed XML at offset ${i}: ${why} near ${JSON.stringify(s.slice(Math.max(0, i - 40), i + 40))}`);
  };
  const checkText = (text: string) => {
    if (/[<>]/.test(text.replace(/&[^;]*;/g, ''))) fail('stray < or >');
    for (const m of text.matchAll(/&([^;\s]*);?/g)) {
      if (!/^(lt|gt|amp|apos|quot|#\d+|#x[0-9a-f]+)$/i.test(m[1]!) || !m[0].endsWith(';')) fail(`bad entity ${m[0]}`);
    }
  };
  while (i < s.length) {
    const lt = s.indexOf('<', i);
    const text = s.slice(i, lt < 0 ? s.length : lt);
    if (stack.length === 0 && text.trim() !== '') fail('text outside the root element');
    checkText(text);
    if (lt < 0) break;
    i = lt;
    if (s.startsWith('<!--', i)) {
      const end = s.indexOf('-->', i);
      if (end < 0) fail('unterminated comment');
      i = end + 3;
      continue;
    }
    const gt = s.indexOf('>', i);
    if (gt < 0) fail('unterminated tag');
    const tag = s.slice(i + 1, gt);
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      if (stack.pop() !== name) fail(`</${name}> closes the wrong element`);
    } else {
      const selfClosing = tag.endsWith('/');
      const body = selfClosing ? tag.slice(0, -1) : tag;
      const m = /^([A-Za-z_][\w:.-]*)((?:\s+[A-Za-z_][\w:.-]*\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*$/.exec(body);
      if (!m) fail(`malformed tag <${tag}>`);
      const attrs = [...m![2]!.matchAll(/\s+([A-Za-z_][\w:.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)];
      const names = attrs.map((a) => a[1]!);
      if (new Set(names).size !== names.length) fail(`duplicate attribute in <${tag}>`);
      for (const a of attrs) checkText(a[2] ?? a[3] ?? '');
      if (stack.length === 0) {
        if (root !== null) fail('a second root element');
        root = m![1]!;
      }
      if (!selfClosing) stack.push(m![1]!);
    }
    i = gt + 1;
  }
  if (stack.length > 0) fail(`unclosed <${stack.at(-1)}>`);
  if (root === null) fail('no root element');
  return root!;
}
