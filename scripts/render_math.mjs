// Renders pages of text and formulas with the real renderers, for scripts/make_web_fixtures.py.
// stdin: [[{"text": "..."} | {"tex": "...", "display": bool}, ...], ...] (one list per page)
// stdout: {"katex": [...], "mathjax": [...], "mathml": [...]}: each page's body, paragraphs as <p>.
// Needs `npm install katex mathjax` (KaTeX 0.16+, MathJax 4) in NODE_PATH or beside it.
import { createRequire } from 'module';
import { readFileSync } from 'fs';

const require = createRequire(import.meta.url);
const katex = require('katex');
const MathJax = await require('mathjax').init({
  loader: { load: ['input/tex', 'output/chtml', 'a11y/assistive-mml'] },
});
const adaptor = MathJax.startup.adaptor;

const escape = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function page(segments, formula) {
  const paragraphs = [''];
  for (const s of segments) {
    if (s.text !== undefined) {
      const parts = s.text.split(/\n\s*\n/);
      parts.forEach((part, i) => {
        if (i > 0) paragraphs.push('');
        paragraphs[paragraphs.length - 1] += escape(part);
      });
    } else {
      paragraphs[paragraphs.length - 1] += formula(s.tex, s.display);
    }
  }
  return paragraphs.filter((p) => p.trim()).map((p) => `<p>${p}</p>`).join('\n');
}

// A formula a renderer rejects stays in the page as its TeX source, as a site without the
// renderer would show it; stderr counts them.
let failed = 0;
const guarded = (render) => (tex, display) => {
  try {
    return render(tex, display);
  } catch (e) {
    failed += 1;
    return escape(display ? `$$${tex}$$` : `$${tex}$`);
  }
};
const pages = JSON.parse(readFileSync(0, 'utf8'));
const out = {
  katex: pages.map((segments) =>
    page(segments, guarded((tex, display) => katex.renderToString(tex, { displayMode: display, throwOnError: false })))),
  mathjax: pages.map((segments) =>
    page(segments, guarded((tex, display) => adaptor.outerHTML(MathJax.tex2chtml(tex, { display }))))),
  // MathJax 3's output: the same markup without the TeX source (no data-latex), so only
  // the assistive MathML says what the formula is.
  mathml: pages.map((segments) =>
    page(segments, guarded((tex, display) =>
      adaptor.outerHTML(MathJax.tex2chtml(tex, { display })).replace(/ data-latex="[^"]*"/g, '')))),
};
if (failed) process.stderr.write(`${failed} formulas left as TeX: the renderer rejected them\n`);
process.stdout.write(JSON.stringify(out));
