//! Finding and opening inputs. An input is a file, a prefix (every file below it) or a
//! glob (`s3://bucket/cc/*.jsonl.gz`), local or remote. Files are read in path order, so
//! a rerun over the same inputs produces the same rows in the same order.

use std::io::{BufRead, BufReader, Read};

use futures::TryStreamExt;
use globset::GlobBuilder;
use indicatif::ProgressBar;
use object_store::{ObjectMeta, ObjectStoreExt};
use serde::Serialize;
use tokio::runtime::Handle;

use crate::error::{Context, Error, Result};
use crate::lake::Location;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per line (`.jsonl`, `.json`, `.ndjson`, optionally `.gz` / `.zst`).
    Jsonl,
    /// Apache Parquet: each row is mapped like a JSON object.
    Parquet,
    /// Plain text or LaTeX (`.txt`, `.tex`, `.md`): cut into documents.
    Text,
    /// Web archives (`.warc`, `.warc.gz`, `.wet.gz`): HTML responses and WET text become
    /// documents, other records are counted and skipped.
    Warc,
    /// An HTML page (`.html`, `.htm`): its main content, formulas as LaTeX.
    Html,
}

impl Format {
    /// Whether records have fields that a mapping names (the others are text).
    pub fn has_fields(self) -> bool {
        matches!(self, Format::Jsonl | Format::Parquet)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

#[derive(Debug, Clone)]
pub struct Input {
    pub location: Location,
    pub size: u64,
    pub e_tag: Option<String>,
    pub modified: chrono::DateTime<chrono::Utc>,
    pub format: Format,
    pub compression: Compression,
}

/// Format and compression from a file name, e.g. `x.jsonl.zst`.
pub fn detect(name: &str) -> (Option<Format>, Compression) {
    let lower = name.to_ascii_lowercase();
    let (stem, compression) = if let Some(s) = lower.strip_suffix(".gz") {
        (s, Compression::Gzip)
    } else if let Some(s) = lower.strip_suffix(".zst") {
        (s, Compression::Zstd)
    } else {
        (lower.as_str(), Compression::None)
    };
    let format = match stem.rsplit_once('.').map(|(_, ext)| ext) {
        Some("jsonl" | "json" | "ndjson") => Some(Format::Jsonl),
        Some("parquet") => Some(Format::Parquet),
        Some("txt" | "tex" | "md") => Some(Format::Text),
        Some("warc" | "wet") => Some(Format::Warc),
        Some("html" | "htm" | "xhtml") => Some(Format::Html),
        _ => None,
    };
    (format, compression)
}

/// Every file one input argument names, in path order.
pub async fn resolve(spec: &str, format: Option<Format>) -> Result<Vec<Input>> {
    let glob_at = spec.find(['*', '?', '[', '{']);
    let (base_spec, rest) = match glob_at {
        Some(i) => match spec[..i].rfind('/') {
            Some(0) => ("/", Some(&spec[1..])),
            Some(j) => (&spec[..j], Some(&spec[j + 1..])),
            None => (".", Some(spec)),
        },
        None => (spec, None),
    };
    let base = Location::parse(base_spec)?;
    let store = base.store()?;
    let mut found: Vec<ObjectMeta> = Vec::new();
    if rest.is_none()
        && let Ok(meta) = store.head(base.path()).await
    {
        found.push(meta);
    } else {
        let matcher = match rest {
            Some(rest) => {
                let pattern =
                    if base.path().as_ref().is_empty() { rest.to_string() } else { format!("{}/{rest}", base.path()) };
                let glob = GlobBuilder::new(&pattern)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| Error::user(format!("`{spec}` is not a valid glob: {e}")))?;
                Some(glob.compile_matcher())
            }
            None => None,
        };
        let listed: Vec<_> =
            store.list(Some(base.path())).try_collect().await.with_context(|| format!("listing {base}"))?;
        for meta in listed {
            // `_log/`, `.hidden` and the like below the base are not inputs.
            let hidden = meta
                .location
                .prefix_match(base.path())
                .is_some_and(|mut below| below.any(|p| p.as_ref().starts_with(['.', '_'])));
            let matches = matcher.as_ref().is_none_or(|m| m.is_match(meta.location.as_ref()));
            if !hidden && matches {
                found.push(meta);
            }
        }
    }
    if found.is_empty() {
        return Err(Error::user(format!("no input found at `{spec}`"))
            .hint("check the path; a folder or prefix takes every file below it, a glob such as data/*.jsonl.gz matches names"));
    }
    found.sort_by(|a, b| a.location.cmp(&b.location));
    found
        .into_iter()
        .map(|meta| {
            let location = base.with_path(meta.location);
            let name = location.path().filename().unwrap_or_default().to_string();
            let (detected, compression) = detect(&name);
            let format = format.or(detected).ok_or_else(|| {
                Error::user(format!("cannot tell the format of `{location}` from its name"))
                    .hint("pass --format jsonl|parquet|text|warc|html")
            })?;
            if format == Format::Parquet && compression != Compression::None {
                return Err(Error::user(format!(
                    "`{location}`: Parquet compresses inside the file; an outer .gz/.zst is not supported"
                )));
            }
            if format == Format::Warc && compression == Compression::Zstd {
                return Err(Error::user(format!("`{location}`: WARC files are read plain or as .gz, not .zst"))
                    .hint("recompress it: zstd -dc FILE | gzip > FILE.warc.gz (or warcio recompress for one member per record)"));
            }
            Ok(Input {
                location,
                size: meta.size,
                e_tag: meta.e_tag,
                modified: meta.last_modified,
                format,
                compression,
            })
        })
        .collect()
}

/// Opens a JSONL, text or HTML input as a buffered byte stream, decompressed, counting the
/// bytes read into `progress`. Call from a blocking thread.
pub fn open(input: &Input, handle: &Handle, progress: &ProgressBar) -> Result<Box<dyn BufRead + Send>> {
    let counted = open_stored(input, handle, progress)?;
    let decoded: Box<dyn Read + Send> = match input.compression {
        Compression::None => Box::new(counted),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, counted))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(counted)?),
    };
    Ok(Box::new(BufReader::with_capacity(1 << 20, decoded)))
}

/// Opens an input's bytes as stored, compressed or not (WARC reads gzip members one by
/// one), counting them into `progress`.
pub fn open_stored(input: &Input, handle: &Handle, progress: &ProgressBar) -> Result<Box<dyn BufRead + Send>> {
    let raw: Box<dyn Read + Send> = if input.location.is_local() {
        let path = format!("/{}", input.location.path());
        Box::new(std::fs::File::open(&path).with_context(|| format!("opening {}", input.location))?)
    } else {
        let store = input.location.store()?;
        let result =
            handle.block_on(store.get(input.location.path())).with_context(|| format!("opening {}", input.location))?;
        let stream = result.into_stream().map_err(std::io::Error::other);
        let reader = tokio_util::io::StreamReader::new(stream);
        Box::new(tokio_util::io::SyncIoBridge::new_with_handle(reader, handle.clone()))
    };
    Ok(Box::new(BufReader::with_capacity(1 << 20, Counting { inner: raw, progress: progress.clone() })))
}

struct Counting<R> {
    inner: R,
    progress: ProgressBar,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}

/// Reads one line into `buf` without its line end, keeping at most `keep` bytes of it;
/// returns the line's full size, or `None` at the end of input. A line longer than `keep`
/// is read to its end (memory stays at `keep`) so the next record starts where it should.
pub fn read_line_capped(reader: &mut dyn BufRead, keep: usize, buf: &mut Vec<u8>) -> std::io::Result<Option<u64>> {
    buf.clear();
    let mut size = 0u64;
    let mut any = false;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            break;
        }
        any = true;
        let (used, found) = match memchr::memchr(b'\n', available) {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        let content = &available[..if found { used - 1 } else { used }];
        let room = keep.saturating_sub(buf.len());
        buf.extend_from_slice(&content[..content.len().min(room)]);
        size += content.len() as u64;
        reader.consume(used);
        if found {
            break;
        }
    }
    if !any {
        return Ok(None);
    }
    if buf.last() == Some(&b'\r') && size == buf.len() as u64 {
        buf.pop();
        size -= 1;
    }
    Ok(Some(size))
}

/// `train`, `test` or `validation` when a file name says so (`gsm8k_test.jsonl`).
pub fn split_from_name(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    lower.split(|c: char| !c.is_ascii_alphanumeric()).find_map(|word| match word {
        "train" | "training" => Some("train"),
        "test" | "testing" => Some("test"),
        "validation" | "valid" | "val" | "dev" => Some("validation"),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_names() {
        assert_eq!(detect("a.jsonl.gz"), (Some(Format::Jsonl), Compression::Gzip));
        assert_eq!(detect("A.JSONL.ZST"), (Some(Format::Jsonl), Compression::Zstd));
        assert_eq!(detect("x.parquet"), (Some(Format::Parquet), Compression::None));
        assert_eq!(detect("basics.tex"), (Some(Format::Text), Compression::None));
        assert_eq!(detect("README"), (None, Compression::None));
        assert_eq!(detect("CC-MAIN-1.warc.gz"), (Some(Format::Warc), Compression::Gzip));
        assert_eq!(detect("CC-MAIN-1.warc.wet.gz"), (Some(Format::Warc), Compression::Gzip));
        assert_eq!(detect("page.HTML"), (Some(Format::Html), Compression::None));
    }

    #[test]
    fn capped_lines_keep_their_size_and_the_next_line() {
        let data = b"short\r\nlooooooong\n\nlast";
        let mut reader: &[u8] = data;
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        while let Some(size) = read_line_capped(&mut reader, 4, &mut buf).unwrap() {
            lines.push((String::from_utf8(buf.clone()).unwrap(), size));
        }
        assert_eq!(lines, vec![("shor".into(), 6), ("looo".into(), 10), ("".into(), 0), ("last".into(), 4)]);
    }

    #[test]
    fn splits_from_file_names() {
        assert_eq!(split_from_name("gsm8k_test.jsonl"), Some("test"));
        assert_eq!(split_from_name("math_train.jsonl"), Some("train"));
        assert_eq!(split_from_name("dev-00001.parquet"), Some("validation"));
        assert_eq!(split_from_name("contest.jsonl"), None);
    }

    #[tokio::test]
    async fn missing_input_is_a_clear_error() {
        let err = resolve("/nonexistent/mathlake/input.jsonl", None).await.unwrap_err();
        assert!(err.to_string().contains("no input found at `/nonexistent/mathlake/input.jsonl`"), "{err}");
    }
}
