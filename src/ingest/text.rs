//! Cutting `.txt` and `.tex` files into documents. A file is read line by line and cut at
//! the headings of its kind (WikiText articles, LaTeX chapters and sections); a piece over
//! the size cap is cut again at the last blank line, else at a line end, else inside the
//! line. Memory holds one document at a time, whatever the file's size.

use std::io::BufRead;

use serde::Serialize;

/// Where a text file is cut into documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TextSplit {
    /// Only by size: the file is one document if it fits the cap.
    Paragraphs,
    /// At WikiText article titles (` = Title = `; ` = = Section = = ` stays inside).
    WikiArticles,
    /// At `\part`, `\chapter` and `\section` (starred too).
    LatexSections,
}

/// How the bytes of a text file are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Invalid sequences send the document to quarantine as `not_utf8`.
    #[default]
    Utf8,
    /// ISO-8859-1: every byte is a character (Project Gutenberg's older texts).
    Latin1,
}

/// A piece of a text file: the line it starts on and its bytes (UTF-8 unless the input
/// was not, which the parser reports).
#[derive(Debug, Clone, PartialEq)]
pub struct TextPiece {
    pub line: u64,
    pub bytes: Vec<u8>,
}

pub struct TextSplitter<R> {
    input: R,
    split: TextSplit,
    encoding: Encoding,
    cap: usize,
    /// The document being built and the line it starts on.
    doc: Vec<u8>,
    doc_line: u64,
    /// Offset in `doc` just after its last blank line, and the line that follows it.
    paragraph_end: Option<(usize, u64)>,
    line_no: u64,
    line: Vec<u8>,
    ready: std::collections::VecDeque<TextPiece>,
    done: bool,
}

impl<R: BufRead> TextSplitter<R> {
    pub fn new(input: R, split: TextSplit, encoding: Encoding, cap: usize) -> Self {
        TextSplitter {
            input,
            split,
            encoding,
            cap: cap.max(1),
            doc: Vec::new(),
            doc_line: 1,
            paragraph_end: None,
            line_no: 0,
            line: Vec::new(),
            ready: Default::default(),
            done: false,
        }
    }

    fn is_heading(&self, line: &[u8]) -> bool {
        let trimmed = line.trim_ascii();
        match self.split {
            TextSplit::Paragraphs => false,
            TextSplit::WikiArticles => {
                trimmed.len() > 4
                    && trimmed.starts_with(b"= ")
                    && trimmed.ends_with(b" =")
                    && !trimmed.starts_with(b"= =")
            }
            TextSplit::LatexSections => [&b"\\part"[..], b"\\chapter", b"\\section"].iter().any(|cmd| {
                trimmed.strip_prefix(*cmd).is_some_and(|rest| matches!(rest.first(), Some(b'{' | b'*' | b'[')))
            }),
        }
    }

    fn emit(&mut self, bytes: Vec<u8>, line: u64) {
        if !bytes.trim_ascii().is_empty() {
            self.ready.push_back(TextPiece { line, bytes });
        }
    }

    fn emit_doc(&mut self) {
        let doc = std::mem::take(&mut self.doc);
        self.emit(doc, self.doc_line);
        self.paragraph_end = None;
    }

    fn push_line(&mut self, line: Vec<u8>) {
        let number = self.line_no;
        if self.is_heading(&line) {
            self.emit_doc();
        }
        if self.doc.is_empty() {
            self.doc_line = number;
        }
        if !self.doc.is_empty() && self.doc.len() + line.len() > self.cap {
            match self.paragraph_end {
                Some((offset, next_line)) if offset > 0 && offset < self.doc.len() => {
                    let rest = self.doc.split_off(offset);
                    self.emit_doc();
                    self.doc = rest;
                    self.doc_line = next_line;
                }
                _ => {
                    self.emit_doc();
                    self.doc_line = number;
                }
            }
        }
        let mut line = line;
        while line.len() > self.cap {
            // A single line over the cap: cut at a character boundary.
            let mut cut = self.cap;
            while cut > 0 && (line[cut] & 0xC0) == 0x80 {
                cut -= 1;
            }
            let rest = line.split_off(cut.max(1));
            self.doc.extend_from_slice(&line);
            self.emit_doc();
            self.doc_line = number;
            line = rest;
        }
        let blank = line.trim_ascii().is_empty();
        self.doc.extend_from_slice(&line);
        if blank {
            self.paragraph_end = Some((self.doc.len(), number + 1));
        }
    }

    /// Reads one line, decoded and with `\r\n` as `\n`; false at the end of input.
    fn read_line(&mut self) -> std::io::Result<bool> {
        self.line.clear();
        if self.input.read_until(b'\n', &mut self.line)? == 0 {
            return Ok(false);
        }
        self.line_no += 1;
        if self.line.ends_with(b"\r\n") {
            self.line.truncate(self.line.len() - 2);
            self.line.push(b'\n');
        }
        Ok(true)
    }
}

impl<R: BufRead> Iterator for TextSplitter<R> {
    type Item = std::io::Result<TextPiece>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(piece) = self.ready.pop_front() {
                return Some(Ok(piece));
            }
            if self.done {
                return None;
            }
            match self.read_line() {
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok(false) => {
                    self.done = true;
                    self.emit_doc();
                }
                Ok(true) => {
                    let line = match self.encoding {
                        Encoding::Utf8 => std::mem::take(&mut self.line),
                        Encoding::Latin1 => self.line.iter().map(|&b| b as char).collect::<String>().into_bytes(),
                    };
                    self.push_line(line);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &[u8], mode: TextSplit, encoding: Encoding, cap: usize) -> Vec<(u64, String)> {
        TextSplitter::new(text, mode, encoding, cap)
            .map(|p| {
                let p = p.unwrap();
                (p.line, String::from_utf8(p.bytes).unwrap())
            })
            .collect()
    }

    #[test]
    fn wikitext_articles_keep_their_sections() {
        let text = b" \n = Robert = \n \n Robert is an actor .\n = = Career = = \n He acted .\n = Next = \n Body .\n";
        let docs = split(text, TextSplit::WikiArticles, Encoding::Utf8, 1 << 20);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].0, 2);
        assert!(docs[0].1.contains("= = Career = ="));
        assert_eq!(docs[1], (7, " = Next = \n Body .\n".to_string()));
    }

    #[test]
    fn latex_sections_and_latin1() {
        let text = b"\\chapter{A}\r\nIntro \xe9t\xe9.\r\n\\section*{B}\r\nMore.\r\n\\sectionmark{x}\r\n";
        let docs = split(text, TextSplit::LatexSections, Encoding::Latin1, 1 << 20);
        assert_eq!(
            docs,
            vec![
                (1, "\\chapter{A}\nIntro \u{e9}t\u{e9}.\n".to_string()),
                (3, "\\section*{B}\nMore.\n\\sectionmark{x}\n".to_string()),
            ]
        );
    }

    #[test]
    fn the_cap_cuts_at_blank_lines_then_lines_then_characters() {
        let text = "aaaa\nbbbb\n\ncccc\ndddd\n".as_bytes();
        let docs = split(text, TextSplit::Paragraphs, Encoding::Utf8, 16);
        assert_eq!(docs, vec![(1, "aaaa\nbbbb\n\n".to_string()), (4, "cccc\ndddd\n".to_string())]);
        let docs = split("ééééé\n".as_bytes(), TextSplit::Paragraphs, Encoding::Utf8, 4);
        assert!(docs.iter().all(|(_, d)| d.len() <= 4), "{docs:?}");
        assert_eq!(docs.iter().map(|(_, d)| d.as_str()).collect::<String>(), "ééééé\n");
    }

    #[test]
    fn nothing_is_dropped_but_blank_space() {
        let text = "x\n\n\n  \ny\n".as_bytes();
        let docs = split(text, TextSplit::Paragraphs, Encoding::Utf8, 3);
        let joined: String = docs.iter().map(|(_, d)| d.as_str()).collect();
        assert_eq!(joined.replace(['\n', ' '], ""), "xy");
        assert!(split(b"", TextSplit::Paragraphs, Encoding::Utf8, 10).is_empty());
    }
}
