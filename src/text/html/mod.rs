//! Web pages to document text, with the math kept as LaTeX.
//!
//! Generic extractors drop formulas or flatten `\frac{a}{b}` into `ab`; OpenWebMath's
//! contribution was an extractor that keeps them. Here every way a page carries a formula
//! comes back as `$...$` (inline) or `$$...$$` (display):
//! - MathJax's `<script type="math/tex">` (`; mode=display` for display math);
//! - MathML: the `application/x-tex` annotation that KaTeX, MathJax and Wikipedia write,
//!   else its `alttext`, else a conversion of the presentation markup ([`mathml`]);
//! - formula images (`<img>` whose class or source says TeX or LaTeX, or whose alt text is
//!   TeX) by their alt text;
//! - `$...$` and `\(...\)` already in the text stay as they are.
//!
//! The rendered copies of a formula (KaTeX's `katex-html`, MathJax's CHTML and SVG output,
//! MathJax 2's preview spans) are dropped, so each formula appears once.
//!
//! Boilerplate goes as trafilatura and resiliparse drop it: elements that are never content
//! (`nav`, `footer`, `aside`, forms, scripts), hidden ones, those whose class, id or ARIA
//! role names navigation, menus, footers, sidebars, cookie or consent banners, sharing,
//! comment widgets or ads, and blocks that are mostly links. When the page marks its main
//! content (`<main>`, `role="main"`, a single `<article>`) only that is read, unless it
//! holds much less text than the page. Code blocks keep their lines; tables become one line
//! per row with cells joined by ` | `; list items start with `- ` (or their number).

pub mod charset;
pub mod mathml;

use ego_tree::NodeRef;
use scraper::node::Element;
use scraper::{Html, Node};

pub use charset::{CharsetSource, Decoded, decode, header_charset};

/// What a page gives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extracted {
    /// The `<title>`, whitespace collapsed; empty when the page has none.
    pub title: String,
    /// The main content as text, formulas as LaTeX.
    pub text: String,
    /// Formulas written, counting each once.
    pub formulas: usize,
}

/// Extracts the main content of an HTML page.
pub fn extract(html: &str) -> Extracted {
    let page = Html::parse_document(html);
    let root = page.tree.root();
    let title = root
        .descendants()
        .find(|n| n.value().as_element().is_some_and(|e| e.name() == "title"))
        .map(|t| collapse(&text_of(t)))
        .unwrap_or_default();
    let body = root.descendants().find(|n| n.value().as_element().is_some_and(|e| e.name() == "body")).unwrap_or(root);
    let whole = render(body);
    let main = main_content(body).map(render).filter(|m| m.text.len() * 3 >= whole.text.len());
    let Rendered { text, formulas, .. } = main.unwrap_or(whole);
    Extracted { title, text, formulas }
}

/// The element a page marks as its main content: `<main>` or `role="main"`, else the only
/// `<article>`.
fn main_content(body: NodeRef<'_, Node>) -> Option<NodeRef<'_, Node>> {
    let elements = || body.descendants().filter(|n| n.value().is_element());
    let marked = elements().find(|n| {
        let e = as_element(*n);
        e.name() == "main" || e.attr("role").is_some_and(|r| r.eq_ignore_ascii_case("main"))
    });
    marked.or_else(|| {
        let mut articles = elements().filter(|n| as_element(*n).name() == "article");
        let first = articles.next()?;
        articles.next().is_none().then_some(first)
    })
}

fn as_element<'a>(node: NodeRef<'a, Node>) -> &'a Element {
    node.value().as_element().expect("filtered to elements")
}

struct Rendered {
    text: String,
    formulas: usize,
}

fn render(node: NodeRef<'_, Node>) -> Rendered {
    let mut writer = Writer::default();
    writer.node(node, 0);
    let mut text = String::with_capacity(writer.out.len());
    for line in writer.out.split('\n') {
        let line = line.trim_end();
        if line.is_empty() && (text.is_empty() || text.ends_with("\n\n")) {
            continue;
        }
        text.push_str(line);
        text.push('\n');
    }
    let text = text.trim_end().to_string();
    Rendered { text, formulas: writer.formulas }
}

/// Nesting beyond this is read as flat text: hostile pages nest deep enough to exhaust
/// the stack of a recursive walk.
const MAX_DEPTH: usize = 256;

/// A block that is mostly link text and not long is navigation, whatever its markup.
const MAX_LINK_SHARE: f64 = 0.5;
const LONG_BLOCK_CHARS: usize = 2000;

#[derive(Default)]
struct Writer {
    out: String,
    /// Characters of text written, and those inside links: a block's link share.
    chars: usize,
    link_chars: usize,
    in_link: usize,
    in_pre: usize,
    /// Whitespace was read since the last word.
    space: bool,
    /// Where the last list marker ends: a block that opens the item stays on its line.
    marker_end: usize,
    /// The lists being written, innermost last: the items of an `ol` so far, `None` for a `ul`.
    lists: Vec<Option<usize>>,
    formulas: usize,
}

impl Writer {
    fn node(&mut self, node: NodeRef<'_, Node>, depth: usize) {
        match node.value() {
            Node::Text(text) => self.text(text),
            Node::Element(e) => self.element(node, e, depth),
            Node::Document | Node::Fragment => self.children(node, depth),
            _ => {}
        }
    }

    fn children(&mut self, node: NodeRef<'_, Node>, depth: usize) {
        if depth >= MAX_DEPTH {
            self.text(&text_of(node));
            return;
        }
        for child in node.children() {
            self.node(child, depth + 1);
        }
    }

    fn element(&mut self, node: NodeRef<'_, Node>, e: &Element, depth: usize) {
        let name = e.name();
        if let Some((tex, display)) = formula(node, e) {
            self.formula(&tex, display);
            return;
        }
        if SKIPPED.contains(&name) || rendered_math(e) || hidden(e) || boilerplate(e) || site_header(node, name) {
            return;
        }
        match name {
            "br" => self.line_break(1),
            "hr" => self.line_break(2),
            "pre" => {
                self.line_break(2);
                self.in_pre += 1;
                self.children(node, depth);
                self.in_pre -= 1;
                self.line_break(2);
            }
            "a" if e.attr("href").is_some() => {
                self.in_link += 1;
                self.children(node, depth);
                self.in_link -= 1;
            }
            "li" => {
                self.line_break(1);
                // Numbered when it is an item of the `ol` being written.
                let in_ol = node.parent().is_some_and(|p| p.value().as_element().is_some_and(|p| p.name() == "ol"));
                let number = match self.lists.last_mut() {
                    Some(Some(items)) if in_ol => {
                        *items += 1;
                        Some(*items)
                    }
                    _ => None,
                };
                match number {
                    Some(n) => self.out.push_str(&format!("{n}. ")),
                    None => self.out.push_str("- "),
                }
                self.marker_end = self.out.len();
                self.children(node, depth);
                self.line_break(1);
            }
            "td" | "th" => {
                if !self.out.ends_with('\n') && !self.out.is_empty() {
                    self.out.push_str(" | ");
                }
                self.children(node, depth);
            }
            "tr" => {
                self.line_break(1);
                self.children(node, depth);
                self.line_break(1);
            }
            "ol" | "ul" => {
                self.lists.push((name == "ol").then_some(0));
                self.block(node, name, depth);
                self.lists.pop();
            }
            _ if BLOCKS.contains(&name) => self.block(node, name, depth),
            _ => self.children(node, depth),
        }
    }

    /// A block: on lines of its own, and dropped when it is mostly links.
    fn block(&mut self, node: NodeRef<'_, Node>, name: &str, depth: usize) {
        let (start, chars, link_chars) = (self.out.len(), self.chars, self.link_chars);
        let paragraph =
            matches!(name, "p" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "blockquote" | "table" | "figure");
        self.line_break(if paragraph { 2 } else { 1 });
        self.children(node, depth);
        let (text, links) = (self.chars - chars, self.link_chars - link_chars);
        if self.in_link == 0 && links > 0 && text < LONG_BLOCK_CHARS && links as f64 > MAX_LINK_SHARE * text as f64 {
            self.out.truncate(start);
            if self.marker_end > start {
                self.marker_end = usize::MAX;
            }
            self.chars = chars;
            self.link_chars = link_chars;
            return;
        }
        self.line_break(if paragraph { 2 } else { 1 });
    }

    fn text(&mut self, text: &str) {
        if self.in_pre > 0 {
            self.out.push_str(text);
            self.count(text.chars().count());
            return;
        }
        let mut written = 0;
        for (i, word) in text.split(char::is_whitespace).enumerate() {
            self.space |= i > 0;
            if word.is_empty() {
                continue;
            }
            self.flush_space();
            self.out.push_str(word);
            written += word.chars().count();
        }
        self.count(written);
    }

    /// Writes the space that whitespace before this point asked for, unless the line just
    /// started: whitespace between inline elements is one space, and none at a line start.
    fn flush_space(&mut self) {
        if self.space && !self.out.is_empty() && !self.out.ends_with([' ', '\n']) {
            self.out.push(' ');
        }
        self.space = false;
    }

    fn count(&mut self, chars: usize) {
        self.chars += chars;
        if self.in_link > 0 {
            self.link_chars += chars;
        }
    }

    fn formula(&mut self, tex: &str, display: bool) {
        let tex = tex.trim();
        if tex.is_empty() {
            return;
        }
        self.formulas += 1;
        if display {
            self.line_break(1);
            self.out.push_str("$$");
            self.out.push_str(tex);
            self.out.push_str("$$");
            self.line_break(1);
        } else {
            self.flush_space();
            self.out.push('$');
            self.out.push_str(tex);
            self.out.push('$');
        }
        self.count(tex.chars().count());
    }

    /// Ends the current line, leaving `lines` line ends (2: a blank line) at the end.
    fn line_break(&mut self, lines: usize) {
        self.space = false;
        if self.in_pre > 0 {
            if lines > 0 && !self.out.ends_with('\n') {
                self.out.push('\n');
            }
            return;
        }
        if self.out.len() == self.marker_end {
            return;
        }
        while self.out.ends_with(' ') {
            self.out.pop();
        }
        if self.out.is_empty() {
            return;
        }
        let have = self.out.len() - self.out.trim_end_matches('\n').len();
        for _ in have..lines {
            self.out.push('\n');
        }
    }
}

/// A `<header>` outside the main content is the site's banner; inside an article it holds
/// the article's title.
fn site_header(node: NodeRef<'_, Node>, name: &str) -> bool {
    name == "header"
        && !node.ancestors().any(|a| a.value().as_element().is_some_and(|e| matches!(e.name(), "main" | "article")))
}

/// All the text below `node`, markup ignored.
fn text_of(node: NodeRef<'_, Node>) -> String {
    node.descendants().filter_map(|d| d.value().as_text().map(|t| &**t)).collect()
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The LaTeX of an element that is a formula, and whether it is display math.
fn formula(node: NodeRef<'_, Node>, e: &Element) -> Option<(String, bool)> {
    match e.name() {
        "script" => {
            let kind = e.attr("type")?.to_ascii_lowercase();
            let tex = kind.starts_with("math/tex");
            tex.then(|| (text_of(node), kind.contains("mode=display")))
        }
        "math" => Some(mathml::to_latex(node)),
        "img" => {
            let alt = e.attr("alt")?.trim();
            let marked = |v: Option<&str>| {
                v.is_some_and(|v| {
                    let v = v.to_ascii_lowercase();
                    v.contains("latex") || v.contains("tex") || v.contains("math") || v.contains("codecogs")
                })
            };
            let by_markup = marked(e.attr("class")) || marked(e.attr("src"));
            let tex_like = alt.contains('\\') && alt.chars().any(|c| matches!(c, '{' | '^' | '_'));
            if alt.is_empty() || !(by_markup || tex_like) {
                return None;
            }
            // WordPress writes the delimiters into the alt text; the formula is inside.
            let inner = alt.strip_prefix("$$").and_then(|a| a.strip_suffix("$$")).map(|a| (a, true));
            let inner = inner.or_else(|| alt.strip_prefix('$').and_then(|a| a.strip_suffix('$')).map(|a| (a, false)));
            let (tex, display) = inner.unwrap_or((alt, false));
            let display = display || e.attr("class").is_some_and(|c| c.contains("display"));
            Some((tex.to_string(), display))
        }
        // MathJax 3 and 4 containers: the TeX when the page kept it, else the assistive
        // MathML inside (through the `math` case), else nothing readable.
        "mjx-container" => {
            let display = e.attr("display").is_some_and(|d| d == "true" || d == "block");
            if let Some(tex) = e.attr("data-latex") {
                return Some((tex.to_string(), display));
            }
            let math = node.descendants().find(|d| d.value().as_element().is_some_and(|m| m.name() == "math"))?;
            let (tex, _) = mathml::to_latex(math);
            Some((tex, display))
        }
        _ => None,
    }
}

/// The drawn copies of a formula whose source is elsewhere in the page: KaTeX's HTML,
/// MathJax 2's output and preview (the source is the `math/tex` script beside them).
fn rendered_math(e: &Element) -> bool {
    e.classes().any(|c| {
        matches!(
            c,
            "katex-html"
                | "MathJax"
                | "MathJax_Display"
                | "MathJax_Preview"
                | "MathJax_CHTML"
                | "MathJax_SVG"
                | "MathJax_SVG_Display"
                | "MathJax_MathML"
                | "mwe-math-mathml-inline"
                | "mwe-math-mathml-display"
        )
    })
}

fn hidden(e: &Element) -> bool {
    if e.attr("hidden").is_some() || e.attr("aria-hidden").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return true;
    }
    e.attr("style").is_some_and(|style| {
        let style: String = style.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
        style.contains("display:none") || style.contains("visibility:hidden")
    })
}

/// Boilerplate by role, class or id. Words are matched whole (`nav`, not `canvas`), and
/// the page's outer elements never count: a `<body class="has-sidebar">` is still the page.
fn boilerplate(e: &Element) -> bool {
    if matches!(e.name(), "html" | "body" | "main" | "article") {
        return false;
    }
    if let Some(role) = e.attr("role")
        && BOILERPLATE_ROLES.iter().any(|r| role.eq_ignore_ascii_case(r))
    {
        return true;
    }
    let names = e.classes().chain(e.id());
    names.flat_map(|n| n.split(|c: char| !c.is_ascii_alphanumeric())).any(|word| {
        let word = word.to_ascii_lowercase();
        BOILERPLATE_WORDS.binary_search(&word.as_str()).is_ok()
    })
}

/// Never content.
const SKIPPED: &[&str] = &[
    "aside", "audio", "button", "canvas", "dialog", "embed", "footer", "form", "head", "iframe", "input", "label",
    "link", "map", "menu", "meta", "nav", "noscript", "object", "option", "script", "select", "style", "svg",
    "template", "textarea", "title", "video",
];

/// Elements that start and end a line.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "blockquote",
    "caption",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "main",
    "ol",
    "p",
    "section",
    "summary",
    "table",
    "tbody",
    "tfoot",
    "thead",
    "ul",
];

const BOILERPLATE_ROLES: &[&str] = &["banner", "complementary", "contentinfo", "dialog", "navigation", "search"];

/// Sorted for a binary search.
const BOILERPLATE_WORDS: &[&str] = &[
    "ad",
    "ads",
    "advert",
    "advertisement",
    "adverts",
    "banner",
    "breadcrumb",
    "breadcrumbs",
    "comment",
    "comments",
    "consent",
    "cookie",
    "cookies",
    "disqus",
    "footer",
    "gdpr",
    "hidden",
    "login",
    "masthead",
    "menu",
    "menubar",
    "nav",
    "navbar",
    "navigation",
    "newsletter",
    "pagination",
    "popup",
    "promo",
    "related",
    "share",
    "sharing",
    "sidebar",
    "signup",
    "skip",
    "social",
    "sponsor",
    "sponsored",
    "sr",
    "subscribe",
    "tags",
    "toolbar",
    "topbar",
    "widget",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_lists_are_sorted() {
        assert!(BOILERPLATE_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn every_formula_form_comes_back_once() {
        let page = r#"<html><head><title> Quadratic
            formula </title></head><body><p>Roots: <script type="math/tex">x=\frac{-b\pm\sqrt{b^2-4ac}}{2a}</script>
            and <script type="math/tex; mode=display">\sum_{k=1}^n k</script></p>
            <p>KaTeX: <span class="katex"><span class="katex-mathml"><math><semantics><mrow><mi>a</mi></mrow>
            <annotation encoding="application/x-tex">a^2</annotation></semantics></math></span>
            <span class="katex-html" aria-hidden="true"><span class="mord">a2</span></span></span> done.</p>
            <p>Image <img class="latex" src="https://s0.wp.com/latex.php?latex=e%5E%7Bi%5Cpi%7D" alt="e^{i\pi}"> and
            <img src="cat.jpg" alt="a cat"> and inline $y=mx$ text.</p>
            <div class="MathJax_Preview">x=...</div><span class="MathJax">rendered junk</span></body></html>"#;
        let got = extract(page);
        assert_eq!(got.title, "Quadratic formula");
        assert_eq!(
            got.text,
            "Roots: $x=\\frac{-b\\pm\\sqrt{b^2-4ac}}{2a}$ and\n$$\\sum_{k=1}^n k$$\n\nKaTeX: $a^2$ done.\n\n\
             Image $e^{i\\pi}$ and and inline $y=mx$ text."
        );
        assert_eq!(got.formulas, 4);
    }

    #[test]
    fn boilerplate_goes_and_main_content_stays() {
        let page = r#"<html><body class="page has-sidebar">
            <nav><a href="/">Home</a> <a href="/a">About</a></nav>
            <div id="cookie-banner">We use cookies. <button>Accept</button></div>
            <div class="menu-wrap"><ul><li><a href="/1">One</a></li><li><a href="/2">Two</a></li></ul></div>
            <main><h1>Fermat's little theorem</h1>
              <p>If <i>p</i> is prime, then <a href="/mod">a^p ≡ a</a> (mod p) for every integer a.</p>
              <ol><li>First case</li><li>Second case</li></ol>
              <pre>def f(x):
    return x ** 2</pre>
              <table><tr><th>n</th><th>n²</th></tr><tr><td>2</td><td>4</td></tr></table>
              <div class="comments"><p>Great post!</p></div>
            </main>
            <footer>© 2024 Example</footer></body></html>"#;
        let got = extract(page);
        assert_eq!(
            got.text,
            "Fermat's little theorem\n\nIf p is prime, then a^p ≡ a (mod p) for every integer a.\n\n\
             1. First case\n2. Second case\n\ndef f(x):\n    return x ** 2\n\nn | n²\n2 | 4"
        );
    }

    #[test]
    fn link_lists_without_markup_are_dropped_but_prose_with_links_is_not() {
        let links: String = (0..12).map(|i| format!("<a href='/{i}'>Topic number {i}</a> ")).collect();
        let page = format!(
            "<body><div>{links}</div><div><p>The <a href='/g'>group</a> of units modulo n has order φ(n), \
             Euler's totient, which counts the residues coprime to n.</p></div></body>"
        );
        assert_eq!(
            extract(&page).text,
            "The group of units modulo n has order φ(n), Euler's totient, which counts the residues coprime to n."
        );
    }

    #[test]
    fn ordered_lists_number_their_own_items_nested_or_not() {
        let page = "<ol><li>one</li><li>two<ol><li>inner</li></ol><ul><li>bullet</li></ul></li><li>three</li></ol>";
        assert_eq!(extract(page).text, "1. one\n2. two\n1. inner\n- bullet\n3. three");
    }

    #[test]
    fn an_item_that_opens_with_a_block_keeps_its_marker_line() {
        let page = "<ul><li><h3>WebIDE</h3><p>Develop apps.</p></li><li>Valence</li></ul>";
        assert_eq!(extract(page).text, "- WebIDE\n\nDevelop apps.\n\n- Valence");
    }

    #[test]
    fn broken_and_deep_markup_still_gives_text() {
        assert_eq!(extract("<p>unclosed <b>bold <i>both</p><p>next").text, "unclosed bold both\n\nnext");
        let deep = format!("{}deep text{}", "<div>".repeat(5000), "</div>".repeat(5000));
        assert_eq!(extract(&deep).text, "deep text");
        assert_eq!(extract("").text, "");
        assert_eq!(extract("<script>var x = 1;</script><style>p{}</style>").text, "");
    }
}
