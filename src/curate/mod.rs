//! Curation: DataFusion SQL files over the lake, with the function library
//! ([`crate::functions`]) that computes the signals the math-data literature filters on;
//! and training and evaluating the math classifier on lake text.
//!
//! ```text
//! sql/*.sql -> script (statements, parameters) -> session (lake tables + functions)
//!           -> COPY ... TO 'table' -> lake::TableWriter -> atomic commit
//! ```

pub mod script;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::lake::{Lake, SessionOptions, session};
use crate::text::classifier::{self, MathClassifier, Metrics, TrainOptions};

/// Trains a math classifier on the texts the `positive` and `negative` queries return.
pub async fn train_classifier(
    lake: &Lake,
    positive: &[String],
    negative: &[String],
    options: TrainOptions,
) -> Result<MathClassifier> {
    let ctx = session(lake, &SessionOptions::default()).await?;
    let (pos, neg) = (texts(&ctx, positive).await?, texts(&ctx, negative).await?);
    tokio::task::spawn_blocking({
        let sources = (positive.to_vec(), negative.to_vec());
        move || classifier::train(&pos, &neg, options, sources)
    })
    .await
    .map_err(|e| Error::Internal(format!("training stopped: {e}")))?
}

/// Scores the texts of labelled queries with `model`.
pub async fn evaluate_classifier(
    lake: &Lake,
    model: &MathClassifier,
    positive: &[String],
    negative: &[String],
) -> Result<Metrics> {
    let ctx = session(lake, &SessionOptions::default()).await?;
    let (pos, neg) = (texts(&ctx, positive).await?, texts(&ctx, negative).await?);
    Ok(model.evaluate(&pos, &neg))
}

/// The first column of each query's rows, as text; NULLs are skipped.
async fn texts(ctx: &SessionContext, queries: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for sql in queries {
        let frame = ctx.sql(sql).await.map_err(|e| Error::user(format!("`{sql}`: {e}")))?;
        let first = frame.schema().fields().first().map(|f| f.data_type().clone());
        if !matches!(first, Some(DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)) {
            return Err(Error::user(format!("`{sql}` must return text in its first column"))
                .hint("select the text, e.g. SELECT text FROM documents WHERE source = 'cc'"));
        }
        let mut stream = frame.execute_stream().await?;
        while let Some(batch) = stream.next().await {
            let column = datafusion::arrow::compute::cast(batch?.column(0), &DataType::Utf8)?;
            let strings = column.as_string::<i32>();
            out.extend((0..strings.len()).filter(|i| strings.is_valid(*i)).map(|i| strings.value(i).to_string()));
        }
    }
    Ok(out)
}
