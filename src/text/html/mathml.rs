//! MathML to LaTeX. A `<math>` element that carries its TeX source (KaTeX, MathJax's
//! assistive MathML, Wikipedia) gives it back as written; one without is converted element
//! by element as far as the common Presentation MathML goes: rows, scripts, fractions,
//! roots, fences, accents, big operators, tables and the operator and letter symbols of
//! the TeX this corpus holds. What has no LaTeX form keeps its characters.

use ego_tree::NodeRef;
use scraper::Node;

use super::text_of;

/// The TeX source or the conversion of the `<math>` element `math`, and whether it is
/// display math.
pub fn to_latex(math: NodeRef<'_, Node>) -> (String, bool) {
    let display = element(math).is_some_and(|e| {
        e.attr("display").is_some_and(|d| d.eq_ignore_ascii_case("block"))
            || e.attr("mode").is_some_and(|d| d.eq_ignore_ascii_case("display"))
    });
    if let Some(tex) = annotation(math) {
        return (tex, display);
    }
    // MathJax 4 writes the source on the element; Wikipedia and others as `alttext`.
    let source = element(math).and_then(|e| e.attr("data-latex").or_else(|| e.attr("alttext")));
    if let Some(alt) = source.filter(|a| !a.trim().is_empty()) {
        return (alt.trim().to_string(), display);
    }
    let mut out = String::new();
    children(math, &mut out);
    (out.trim().to_string(), display)
}

/// The text of an `<annotation encoding="application/x-tex">` (or `TeX`) below `math`.
fn annotation(math: NodeRef<'_, Node>) -> Option<String> {
    math.descendants().find_map(|node| {
        let e = element(node)?;
        let tex = e.name() == "annotation"
            && e.attr("encoding").is_some_and(|enc| {
                let enc = enc.to_ascii_lowercase();
                enc == "application/x-tex" || enc == "tex" || enc == "latex" || enc == "application/x-latex"
            });
        tex.then(|| text_of(node).trim().to_string()).filter(|t| !t.is_empty())
    })
}

fn element(node: NodeRef<'_, Node>) -> Option<&scraper::node::Element> {
    node.value().as_element()
}

/// The element children of `node`; whitespace between MathML elements means nothing.
fn element_children<'a>(node: NodeRef<'a, Node>) -> Vec<NodeRef<'a, Node>> {
    node.children().filter(|c| c.value().is_element()).collect()
}

fn children(node: NodeRef<'_, Node>, out: &mut String) {
    for child in element_children(node) {
        convert(child, out);
    }
}

/// `node` as a TeX group: braces unless it is one character or command.
fn group(node: Option<NodeRef<'_, Node>>, out: &mut String) {
    let mut inner = String::new();
    if let Some(node) = node {
        convert(node, &mut inner);
    }
    let inner = inner.trim();
    let single = inner.chars().count() == 1
        || (inner.starts_with('\\') && inner[1..].chars().all(|c| c.is_ascii_alphabetic()) && inner.len() > 1);
    if single {
        out.push_str(inner);
    } else {
        out.push('{');
        out.push_str(inner);
        out.push('}');
    }
}

fn convert(node: NodeRef<'_, Node>, out: &mut String) {
    let Some(e) = element(node) else { return };
    let kids = element_children(node);
    match e.name() {
        "mi" => {
            let text = text_of(node);
            let text = text.trim();
            if text.chars().count() > 1 {
                match FUNCTIONS.iter().find(|f| **f == text) {
                    Some(f) => push_command(out, f),
                    None => {
                        out.push_str("\\mathrm{");
                        out.push_str(text);
                        out.push('}');
                    }
                }
            } else {
                symbols(text, out);
            }
        }
        "mn" => out.push_str(text_of(node).trim()),
        "mo" => symbols(text_of(node).trim(), out),
        "mtext" | "ms" => {
            let text = text_of(node);
            if !text.trim().is_empty() {
                out.push_str("\\text{");
                out.push_str(&text);
                out.push('}');
            }
        }
        "mspace" => out.push(' '),
        "msup" => script(&kids, None, kids.get(1).copied(), out),
        "msub" => script(&kids, kids.get(1).copied(), None, out),
        "msubsup" => script(&kids, kids.get(1).copied(), kids.get(2).copied(), out),
        "munder" => under_over(&kids, kids.get(1).copied(), None, out),
        "mover" => under_over(&kids, None, kids.get(1).copied(), out),
        "munderover" => under_over(&kids, kids.get(1).copied(), kids.get(2).copied(), out),
        "mfrac" => {
            let binomial = e.attr("linethickness").is_some_and(|t| t.trim_start_matches('0').is_empty() || t == "0px");
            out.push_str(if binomial { "\\binom" } else { "\\frac" });
            group_braced(kids.first().copied(), out);
            group_braced(kids.get(1).copied(), out);
        }
        "msqrt" => {
            out.push_str("\\sqrt{");
            children(node, out);
            out.push('}');
        }
        "mroot" => {
            out.push_str("\\sqrt[");
            if let Some(index) = kids.get(1) {
                convert(*index, out);
            }
            out.push(']');
            group_braced(kids.first().copied(), out);
        }
        "mfenced" => {
            let open = e.attr("open").unwrap_or("(");
            let close = e.attr("close").unwrap_or(")");
            let separators: Vec<char> =
                e.attr("separators").unwrap_or(",").chars().filter(|c| !c.is_whitespace()).collect();
            out.push_str("\\left");
            symbols_or(open, ".", out);
            for (i, kid) in kids.iter().enumerate() {
                if i > 0 {
                    let sep = separators.get(i - 1).or(separators.last()).copied().unwrap_or(',');
                    out.push(sep);
                }
                convert(*kid, out);
            }
            out.push_str("\\right");
            symbols_or(close, ".", out);
        }
        "mtable" => {
            out.push_str("\\begin{matrix}");
            for (r, row) in kids.iter().enumerate() {
                if r > 0 {
                    out.push_str(" \\\\ ");
                }
                for (c, cell) in element_children(*row).iter().enumerate() {
                    if c > 0 {
                        out.push_str(" & ");
                    }
                    convert(*cell, out);
                }
            }
            out.push_str("\\end{matrix}");
        }
        // Layout that TeX does not write, and the alternatives a converter cannot read.
        "mphantom" | "annotation" | "annotation-xml" | "none" | "mprescripts" => {}
        // The first child of `semantics` is the presentation; the rest are annotations.
        "semantics" => {
            if let Some(first) = kids.first() {
                convert(*first, out);
            }
        }
        "menclose" if e.attr("notation").is_some_and(|n| n.split_whitespace().any(|n| n == "box")) => {
            out.push_str("\\boxed{");
            children(node, out);
            out.push('}');
        }
        // mrow, mstyle, mpadded, menclose, merror, mtd and anything unknown: their content.
        _ => children(node, out),
    }
}

fn group_braced(node: Option<NodeRef<'_, Node>>, out: &mut String) {
    out.push('{');
    if let Some(node) = node {
        let mut inner = String::new();
        convert(node, &mut inner);
        out.push_str(inner.trim());
    }
    out.push('}');
}

fn script(
    kids: &[NodeRef<'_, Node>],
    sub: Option<NodeRef<'_, Node>>,
    sup: Option<NodeRef<'_, Node>>,
    out: &mut String,
) {
    group(kids.first().copied(), out);
    if let Some(sub) = sub {
        out.push('_');
        group(Some(sub), out);
    }
    if let Some(sup) = sup {
        out.push('^');
        group(Some(sup), out);
    }
}

/// Limits of big operators as scripts; accents as TeX accents; anything else stacked.
fn under_over(
    kids: &[NodeRef<'_, Node>],
    under: Option<NodeRef<'_, Node>>,
    over: Option<NodeRef<'_, Node>>,
    out: &mut String,
) {
    let Some(base) = kids.first().copied() else { return };
    let mut base_tex = String::new();
    convert(base, &mut base_tex);
    let big =
        ["\\sum", "\\prod", "\\int", "\\bigcup", "\\bigcap", "\\coprod", "\\lim", "\\max", "\\min", "\\sup", "\\inf"];
    if big.iter().any(|b| base_tex.trim() == *b) {
        script(kids, under, over, out);
        return;
    }
    if let (Some(accent), None) = (over, under) {
        let mark = text_of(accent);
        let command = match mark.trim() {
            "^" | "\u{302}" | "ˆ" => Some("\\hat"),
            "~" | "\u{303}" | "˜" => Some("\\tilde"),
            "¯" | "\u{304}" | "‾" | "_" | "―" | "−" => Some("\\overline"),
            "→" | "\u{20d7}" => Some("\\vec"),
            "˙" | "\u{307}" | "." => Some("\\dot"),
            "¨" | "\u{308}" => Some("\\ddot"),
            "⏞" => Some("\\overbrace"),
            _ => None,
        };
        if let Some(command) = command {
            out.push_str(command);
            out.push('{');
            out.push_str(base_tex.trim());
            out.push('}');
            return;
        }
    }
    if let (Some(mark), None) = (under, over)
        && matches!(text_of(mark).trim(), "_" | "¯" | "―" | "‾")
    {
        out.push_str("\\underline{");
        out.push_str(base_tex.trim());
        out.push('}');
        return;
    }
    let mut stacked = format!("{{{}}}", base_tex.trim());
    if let Some(under) = under {
        let mut t = String::new();
        convert(under, &mut t);
        stacked = format!("\\underset{{{}}}{stacked}", t.trim());
    }
    if let Some(over) = over {
        let mut t = String::new();
        convert(over, &mut t);
        stacked = format!("\\overset{{{}}}{stacked}", t.trim());
    }
    out.push_str(&stacked);
}

fn push_command(out: &mut String, name: &str) {
    out.push('\\');
    out.push_str(name);
    out.push(' ');
}

fn symbols_or(text: &str, empty: &str, out: &mut String) {
    if text.is_empty() { out.push_str(empty) } else { symbols(text, out) }
}

/// Characters to TeX: the symbols with a command get it (followed by a space, so that
/// `\alpha x` stays two tokens), the rest stay as they are.
fn symbols(text: &str, out: &mut String) {
    for c in text.chars() {
        match SYMBOLS.binary_search_by_key(&c, |(s, _)| *s) {
            Ok(i) => push_command(out, SYMBOLS[i].1),
            Err(_) => match c {
                '−' => out.push('-'),
                '$' | '%' | '&' | '#' => {
                    out.push('\\');
                    out.push(c);
                }
                '{' => out.push_str("\\{"),
                '}' => out.push_str("\\}"),
                '\u{2061}' | '\u{2062}' | '\u{2063}' | '\u{2064}' => {} // invisible operators
                _ => out.push(c),
            },
        }
    }
}

const FUNCTIONS: &[&str] = &[
    "arccos", "arcsin", "arctan", "arg", "cos", "cosh", "cot", "coth", "csc", "deg", "det", "dim", "exp", "gcd", "hom",
    "inf", "ker", "lg", "lim", "liminf", "limsup", "ln", "log", "max", "min", "Pr", "sec", "sin", "sinh", "sup", "tan",
    "tanh",
];

/// Sorted by character for a binary search.
const SYMBOLS: &[(char, &str)] = &[
    ('¬', "neg"),
    ('±', "pm"),
    ('·', "cdot"),
    ('×', "times"),
    ('÷', "div"),
    ('Γ', "Gamma"),
    ('Δ', "Delta"),
    ('Θ', "Theta"),
    ('Λ', "Lambda"),
    ('Ξ', "Xi"),
    ('Π', "Pi"),
    ('Σ', "Sigma"),
    ('Φ', "Phi"),
    ('Ψ', "Psi"),
    ('Ω', "Omega"),
    ('α', "alpha"),
    ('β', "beta"),
    ('γ', "gamma"),
    ('δ', "delta"),
    ('ε', "varepsilon"),
    ('ζ', "zeta"),
    ('η', "eta"),
    ('θ', "theta"),
    ('ι', "iota"),
    ('κ', "kappa"),
    ('λ', "lambda"),
    ('μ', "mu"),
    ('ν', "nu"),
    ('ξ', "xi"),
    ('π', "pi"),
    ('ρ', "rho"),
    ('σ', "sigma"),
    ('τ', "tau"),
    ('υ', "upsilon"),
    ('φ', "varphi"),
    ('χ', "chi"),
    ('ψ', "psi"),
    ('ω', "omega"),
    ('ϕ', "phi"),
    ('ϵ', "epsilon"),
    ('…', "ldots"),
    ('′', "prime"),
    ('ℓ', "ell"),
    ('ℕ', "mathbb{N}"),
    ('ℚ', "mathbb{Q}"),
    ('ℝ', "mathbb{R}"),
    ('ℤ', "mathbb{Z}"),
    ('←', "leftarrow"),
    ('→', "to"),
    ('↔', "leftrightarrow"),
    ('↦', "mapsto"),
    ('⇐', "Leftarrow"),
    ('⇒', "Rightarrow"),
    ('⇔', "Leftrightarrow"),
    ('∀', "forall"),
    ('∂', "partial"),
    ('∃', "exists"),
    ('∅', "emptyset"),
    ('∇', "nabla"),
    ('∈', "in"),
    ('∉', "notin"),
    ('∋', "ni"),
    ('∏', "prod"),
    ('∑', "sum"),
    ('∓', "mp"),
    ('∖', "setminus"),
    ('∗', "ast"),
    ('∘', "circ"),
    ('√', "surd"),
    ('∝', "propto"),
    ('∞', "infty"),
    ('∠', "angle"),
    ('∣', "mid"),
    ('∥', "parallel"),
    ('∧', "wedge"),
    ('∨', "vee"),
    ('∩', "cap"),
    ('∪', "cup"),
    ('∫', "int"),
    ('∮', "oint"),
    ('∴', "therefore"),
    ('∼', "sim"),
    ('≃', "simeq"),
    ('≅', "cong"),
    ('≈', "approx"),
    ('≠', "neq"),
    ('≡', "equiv"),
    ('≤', "leq"),
    ('≥', "geq"),
    ('≪', "ll"),
    ('≫', "gg"),
    ('⊂', "subset"),
    ('⊃', "supset"),
    ('⊆', "subseteq"),
    ('⊇', "supseteq"),
    ('⊕', "oplus"),
    ('⊗', "otimes"),
    ('⊥', "perp"),
    ('⋅', "cdot"),
    ('⋮', "vdots"),
    ('⋯', "cdots"),
    ('⋱', "ddots"),
    ('⌈', "lceil"),
    ('⌉', "rceil"),
    ('⌊', "lfloor"),
    ('⌋', "rfloor"),
    ('⟨', "langle"),
    ('⟩', "rangle"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use scraper::Html;

    fn latex(markup: &str) -> (String, bool) {
        let page = Html::parse_fragment(markup);
        let math = page.tree.root().descendants().find(|n| element(*n).is_some_and(|e| e.name() == "math")).unwrap();
        to_latex(math)
    }

    #[test]
    fn symbols_are_sorted_for_the_binary_search() {
        assert!(SYMBOLS.windows(2).all(|w| w[0].0 < w[1].0), "SYMBOLS must be sorted by character");
    }

    #[test]
    fn the_annotation_wins_and_display_is_kept() {
        let katex = r#"<math display="block"><semantics><mrow><mfrac><mi>a</mi><mi>b</mi></mfrac></mrow>
            <annotation encoding="application/x-tex">\frac{a}{b}</annotation></semantics></math>"#;
        assert_eq!(latex(katex), ("\\frac{a}{b}".to_string(), true));
        let wiki = r#"<math alttext="{\displaystyle x^{2}}"><mi>x</mi></math>"#;
        assert_eq!(latex(wiki).0, "{\\displaystyle x^{2}}");
    }

    #[test]
    fn presentation_mathml_converts() {
        let cases = [
            (
                "<math><msup><mi>x</mi><mn>2</mn></msup><mo>+</mo><msub><mi>a</mi><mrow><mi>i</mi><mo>+</mo><mn>1</mn></mrow></msub></math>",
                "x^2+a_{i+1}",
            ),
            (
                "<math><mfrac><mrow><mo>−</mo><mi>b</mi><mo>±</mo><msqrt><msup><mi>b</mi><mn>2</mn></msup><mo>−</mo><mn>4</mn><mi>a</mi><mi>c</mi></msqrt></mrow><mrow><mn>2</mn><mi>a</mi></mrow></mfrac></math>",
                "\\frac{-b\\pm \\sqrt{b^2-4ac}}{2a}",
            ),
            (
                "<math><munderover><mo>∑</mo><mrow><mi>k</mi><mo>=</mo><mn>1</mn></mrow><mi>n</mi></munderover><mi>k</mi></math>",
                "\\sum_{k=1}^nk",
            ),
            (
                "<math><mover><mi>v</mi><mo>→</mo></mover><mo>⋅</mo><mi>sin</mi><mi>θ</mi></math>",
                "\\vec{v}\\cdot \\sin \\theta",
            ),
            (
                "<math><mroot><mi>x</mi><mn>3</mn></mroot><mfenced><mi>a</mi><mi>b</mi></mfenced></math>",
                "\\sqrt[3]{x}\\left(a,b\\right)",
            ),
            (
                "<math><mtable><mtr><mtd><mn>1</mn></mtd><mtd><mn>0</mn></mtd></mtr><mtr><mtd><mn>0</mn></mtd><mtd><mn>1</mn></mtd></mtr></mtable></math>",
                "\\begin{matrix}1 & 0 \\\\ 0 & 1\\end{matrix}",
            ),
            ("<math><mtext>if </mtext><mi>n</mi><mo>∈</mo><mi>ℕ</mi></math>", "\\text{if }n\\in \\mathbb{N}"),
            ("<math><menclose notation=\"box\"><mn>40</mn><mo>%</mo></menclose><mo>$</mo></math>", "\\boxed{40\\%}\\$"),
        ];
        for (markup, expected) in cases {
            assert_eq!(latex(markup).0, expected, "{markup}");
        }
    }
}
