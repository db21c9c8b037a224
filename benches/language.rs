//! Language identification options on the texts of a lake query, those over 200
//! characters (`scripts/bench_curate.sh`'s corpus): each identifier timed on one thread over
//! the same texts (read first), its labels compared with the reference's overall, per
//! language (each reference label held by at least 20 texts) and on curation's decision
//! (English at confidence >= 0.5, `sql/curate_documents.sql`). The reference is whatlang on
//! the first 512 bytes, what `language()` computed on 2026-12-07. First it prints which
//! language comes second on the texts whatlang finds English.
//!
//!   cargo bench --profile ci --features distributed --bench language -- LAKE "SELECT text FROM documents"

use std::collections::BTreeMap;
use std::time::Instant;

use datafusion::arrow::array::AsArray;
use mathlake::lake::{Lake, SessionOptions};
use mathlake::text::language::{LANGUAGE_PREFIX, identify};

/// A label: (ISO 639-3 code, confidence); `None` where nothing was identified.
type Label = Option<(&'static str, f64)>;

fn whatlang(text: &str, bytes: usize) -> Label {
    whatlang::detect(&text[..text.floor_char_boundary(bytes)]).map(|info| (info.lang().code(), info.confidence()))
}

/// whichlang has no confidence and always answers.
fn whichlang(text: &str, bytes: usize) -> Label {
    Some((whichlang::detect_language(&text[..text.floor_char_boundary(bytes)]).three_letter_code(), 1.0))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let [lake, sql] = args.as_slice() else {
        return Err("usage: language LAKE SQL".into());
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let texts: Vec<String> = runtime.block_on(async {
        let ctx = mathlake::lake::session(&Lake::open(lake)?, &SessionOptions::default()).await?;
        let mut texts = Vec::new();
        for batch in ctx.sql(sql).await?.collect().await? {
            let column =
                datafusion::arrow::compute::cast(batch.column(0), &datafusion::arrow::datatypes::DataType::Utf8)?;
            let long = column.as_string::<i32>().iter().flatten().filter(|t| t.chars().count() > 200);
            texts.extend(long.map(str::to_owned));
        }
        Ok::<_, Box<dyn std::error::Error>>(texts)
    })?;

    print_runner_ups(&texts);
    type Identifier = Box<dyn Fn(&str) -> Label>;
    let candidates: Vec<(&str, Identifier)> = vec![
        ("whatlang, 512 bytes (reference)", Box::new(|t| whatlang(t, 512))),
        ("shipped: text::language::identify", Box::new(|t| identify(t).map(|l| (l.code, l.confidence)))),
        ("whatlang, whole text", Box::new(|t| whatlang(t, usize::MAX))),
        ("whatlang, 384 bytes", Box::new(|t| whatlang(t, 384))),
        ("whatlang, 256 bytes", Box::new(|t| whatlang(t, 256))),
        ("whatlang, 128 bytes", Box::new(|t| whatlang(t, 128))),
        ("whichlang, 512 bytes", Box::new(|t| whichlang(t, 512))),
        ("whichlang, 2 KB", Box::new(|t| whichlang(t, 2048))),
    ];
    let mut reference: Vec<Label> = Vec::new();
    for (name, identify) in &candidates {
        let started = Instant::now();
        let labels: Vec<Label> = texts.iter().map(|t| identify(t)).collect();
        let us_per_text = started.elapsed().as_secs_f64() * 1e6 / texts.len() as f64;
        if reference.is_empty() {
            reference = labels.clone();
        }
        let code = |l: &Label| l.map(|(c, _)| c);
        let english = |l: &Label| l.is_some_and(|(c, confidence)| c == "eng" && confidence >= 0.5);
        let mut per_language: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (r, l) in reference.iter().zip(&labels) {
            let entry = per_language.entry(code(r).unwrap_or("none")).or_default();
            entry.0 += 1;
            entry.1 += usize::from(code(r) == code(l));
        }
        let agree = per_language.values().map(|(_, same)| same).sum::<usize>();
        let decisions = reference.iter().zip(&labels).filter(|(r, l)| english(r) == english(l)).count();
        let per_language: BTreeMap<&str, String> = per_language
            .into_iter()
            .filter(|(_, (texts, _))| *texts >= 20)
            .map(|(code, (texts, same))| (code, format!("{same}/{texts}")))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "identifier": name, "texts": texts.len(), "us_per_text": (us_per_text * 10.0).round() / 10.0,
                "agreement": agree as f64 / texts.len() as f64,
                "decision_agreement": decisions as f64 / texts.len() as f64,
                "per_language": per_language,
            })
        );
    }
    Ok(())
}

/// Which language whatlang ranks second on the texts it finds English (on the first
/// `LANGUAGE_PREFIX` bytes): how `text::language`'s first-pass languages were chosen.
fn print_runner_ups(texts: &[String]) {
    let without_english = whatlang::Detector::with_denylist(vec![whatlang::Lang::Eng]);
    let mut runner_ups: BTreeMap<&str, usize> = BTreeMap::new();
    let mut english = 0;
    for text in texts {
        let head = &text[..text.floor_char_boundary(LANGUAGE_PREFIX)];
        if whatlang::detect(head).is_some_and(|info| info.lang() == whatlang::Lang::Eng) {
            english += 1;
            let second = without_english.detect(head).map_or("none", |info| info.lang().code());
            *runner_ups.entry(second).or_default() += 1;
        }
    }
    println!("{}", serde_json::json!({ "english_texts": english, "runner_ups": runner_ups }));
}
