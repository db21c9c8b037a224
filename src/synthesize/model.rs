//! The model-based methods: `response_diversity` and `query_expansion` ask one model (the
//! writer), `tutorship` a student and then a teacher. Every request goes through the
//! response cache first, so a rerun pays only for what was never answered.

use std::path::PathBuf;

use super::cache::{Entry, RequestKey, ResponseCache};
use super::client::{CallError, Client, EndpointOptions, Message, Reply, Sampling, parse_reply};
use super::replies::{self, Review, SelfCheck};
use super::templates::Template;
use super::{Method, Outcome, Problem, Record, answer_matches, retrospective};
use crate::error::{Error, Result};
use crate::text::{marked_answer, step_spans};

/// What a model-based run needs beyond the problems.
#[derive(Debug, Clone)]
pub struct ModelSettings {
    /// The writer (`response_diversity`, `query_expansion`) or the student (`tutorship`).
    pub writer: EndpointOptions,
    /// The teacher of `tutorship`.
    pub teacher: EndpointOptions,
    /// Temperature, top_p and max_tokens of every request; the seed is set per rollout.
    pub sampling: Sampling,
    /// A folder whose `{template}.txt` files replace the bundled ones.
    pub templates: Option<PathBuf>,
}

/// The clients, templates and cache of one run.
pub(super) struct Models {
    method: Method,
    writer: Client,
    teacher: Option<Client>,
    sampling: Sampling,
    templates: Vec<Template>,
    /// What every record of the run says in `template_hash` and `models`.
    template_hash: String,
    models: String,
    pub cache: ResponseCache,
}

/// One request's outcome: a reply, or the reason there is none.
enum Asked {
    Reply(Reply),
    Failed(String),
}

impl Models {
    pub fn new(method: Method, settings: &ModelSettings, cache: ResponseCache) -> Result<Models> {
        let folder = settings.templates.as_deref();
        let (templates, teacher) = match method {
            Method::Retrospective => return Err(Error::Internal("retrospective enhancement calls no model".into())),
            Method::ResponseDiversity => {
                (vec![Template::load("response_diversity", folder, &["question", "solution"])?], None)
            }
            Method::QueryExpansion => {
                (vec![Template::load("query_expansion", folder, &["question", "solution"])?], None)
            }
            Method::Tutorship => (
                vec![
                    Template::load("tutorship_student", folder, &["question"])?,
                    Template::load("tutorship_teacher", folder, &["question", "attempt"])?,
                ],
                Some(Client::new(settings.teacher.clone())?),
            ),
        };
        let writer = Client::new(settings.writer.clone())?;
        let models = match &teacher {
            Some(teacher) => serde_json::json!({ "student": writer.model(), "teacher": teacher.model() }),
            None => serde_json::json!({ "writer": writer.model() }),
        };
        Ok(Models {
            method,
            writer,
            teacher,
            sampling: settings.sampling.clone(),
            template_hash: templates.iter().map(|t| t.hash.as_str()).collect::<Vec<_>>().join("+"),
            templates,
            models: models.to_string(),
            cache,
        })
    }

    /// The clients' counters summed: (requests, retries, failures, tokens in, tokens out).
    pub fn spent(&self) -> [u64; 5] {
        let mut sum = [0; 5];
        for client in std::iter::once(&self.writer).chain(&self.teacher) {
            for (total, count) in sum.iter_mut().zip(client.counters.snapshot()) {
                *total += count;
            }
        }
        sum
    }

    /// The records of one problem, one per rollout; a rollout that repeats an earlier
    /// accepted one is rejected as a duplicate.
    pub async fn records(&self, problem: &Problem, rollouts: u32, seed: u64) -> Result<Vec<Record>> {
        let made = futures::future::try_join_all((0..rollouts).map(|r| self.record(problem, r, seed))).await?;
        let mut kept: Vec<String> = Vec::new();
        let mut records = Vec::with_capacity(made.len());
        for mut record in made {
            if matches!(record.outcome, Outcome::Accepted) {
                let text = format!(
                    "{}\n{}",
                    record.question.as_deref().unwrap_or_default(),
                    record.solution.as_deref().unwrap_or_default()
                );
                if kept.iter().any(|earlier| same_text(earlier, &text)) {
                    record.outcome = Outcome::Rejected("same_as_an_earlier_rollout");
                } else {
                    kept.push(text);
                }
            }
            records.push(record);
        }
        Ok(records)
    }

    async fn record(&self, problem: &Problem, rollout: u32, seed: u64) -> Result<Record> {
        let seed = seed.wrapping_add(u64::from(rollout));
        let mut record = Record {
            question: Some(problem.question.to_string()),
            solution: None,
            final_answer: None,
            answer_matches: None,
            verdict: None,
            outcome: Outcome::Accepted,
            template: self.templates[0].name,
            template_hash: self.template_hash.clone(),
            models: Some(self.models.clone()),
            tokens: [0, 0],
            request_ids: Vec::new(),
        };
        let values = [("question", problem.question.as_str()), ("solution", problem.solution.as_str())];
        let first = self.templates[0].render(&values);
        let role = if self.teacher.is_some() { "student" } else { "writer" };
        let Some(reply) = self.ask(&self.writer, role, problem, rollout, first, seed, &mut record).await? else {
            return Ok(record);
        };
        match self.method {
            Method::ResponseDiversity => diversity(&mut record, &reply, problem),
            Method::QueryExpansion => expansion(&mut record, &reply, problem),
            Method::Tutorship => {
                record.template = "tutorship";
                let attempt = reply.text.trim();
                let steps = step_spans(attempt);
                if steps.is_empty() {
                    record.solution = Some(attempt.to_string());
                    record.outcome = Outcome::Rejected("empty_attempt");
                    return Ok(record);
                }
                let numbered: String = steps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| format!("Step {}: {}\n", i + 1, &attempt[s.clone()]))
                    .collect();
                let values = [
                    ("question", problem.question.as_str()),
                    ("solution", problem.solution.as_str()),
                    ("attempt", numbered.as_str()),
                ];
                let prompt = self.templates[1].render(&values);
                let teacher =
                    self.teacher.as_ref().ok_or_else(|| Error::Internal("tutorship without a teacher".into()))?;
                let Some(review) = self.ask(teacher, "teacher", problem, rollout, prompt, seed, &mut record).await?
                else {
                    record.solution = Some(attempt.to_string());
                    return Ok(record);
                };
                tutorship(&mut record, attempt, &steps, &review, problem);
            }
            Method::Retrospective => return Err(Error::Internal("retrospective enhancement calls no model".into())),
        }
        Ok(record)
    }

    /// Sends `prompt` (or finds its reply in the cache) and notes the request on `record`;
    /// `None`, with the record marked failed, when no reply came.
    #[allow(clippy::too_many_arguments)]
    async fn ask(
        &self,
        client: &Client,
        role: &'static str,
        problem: &Problem,
        rollout: u32,
        prompt: String,
        seed: u64,
        record: &mut Record,
    ) -> Result<Option<Reply>> {
        let sampling = Sampling { seed: Some(seed), ..self.sampling.clone() };
        let body = client.body(&[Message { role: "user", content: prompt }], &sampling)?;
        let request = RequestKey { problem_id: &problem.id, method: self.method.name(), rollout, role, body: &body };
        let (key, request_hash) = request.key();
        record.request_ids.push(key.clone());
        let asked = match self.cache.get(&key) {
            Some(entry) => match parse_reply(&entry.response) {
                Some(reply) => Asked::Reply(reply),
                None => return Err(Error::Internal(format!("the cached response {key} is not a chat completion"))),
            },
            None => match client.send(body.clone()).await {
                Ok(reply) => {
                    let entry = Entry {
                        key,
                        problem_id: problem.id.to_string(),
                        method: self.method.name().to_string(),
                        rollout,
                        role: role.to_string(),
                        request_hash,
                        model: client.model().to_string(),
                        request: String::from_utf8_lossy(&body).into_owned(),
                        response: reply.raw.clone(),
                        tokens_in: reply.tokens_in,
                        tokens_out: reply.tokens_out,
                        attempts: reply.attempts,
                        answered_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    };
                    self.cache.store(entry).await?;
                    Asked::Reply(reply)
                }
                Err(CallError::Fatal(error)) => return Err(error),
                Err(CallError::Failed { reason, .. }) => Asked::Failed(reason),
            },
        };
        match asked {
            Asked::Reply(reply) => {
                record.tokens[0] += reply.tokens_in;
                record.tokens[1] += reply.tokens_out;
                if reply.finish_reason.as_deref() == Some("length") {
                    record.solution = Some(reply.text.trim().to_string());
                    record.outcome = Outcome::Rejected("cut_at_max_tokens");
                    return Ok(None);
                }
                Ok(Some(reply))
            }
            Asked::Failed(reason) => {
                record.outcome = Outcome::Failed(format!("{role}: {reason}"));
                Ok(None)
            }
        }
    }
}

/// Marks `record` rejected for `reason` unless it already is.
fn reject(record: &mut Record, reason: &'static str) {
    if matches!(record.outcome, Outcome::Accepted) {
        record.outcome = Outcome::Rejected(reason);
    }
}

/// Records the model's verdict on its own work; a refusal rejects the record.
fn self_checked(record: &mut Record, check: SelfCheck) {
    record.verdict = Some(check.name().to_string());
    if check == SelfCheck::Refuse {
        reject(record, "self_check_refused");
    }
}

/// Fills the produced answer and checks it against the source problem's gold answer.
fn check_answer(record: &mut Record, gold: Option<&str>) {
    record.final_answer = record.solution.as_deref().and_then(marked_answer);
    record.answer_matches = answer_matches(record.final_answer.as_deref(), gold);
    match record.answer_matches {
        Some(false) => reject(record, "answer_differs_from_gold"),
        None if record.final_answer.is_none() => reject(record, "no_final_answer"),
        _ => {}
    }
}

/// Another solution of the same problem, kept when its self-check accepts it, it differs
/// from the gold solution and its answer is the gold answer.
fn diversity(record: &mut Record, reply: &Reply, problem: &Problem) {
    match replies::checked_solution(&reply.text) {
        Ok(checked) => {
            self_checked(record, checked.check);
            if same_text(&checked.solution, &problem.solution) {
                reject(record, "same_as_gold");
            }
            record.solution = Some(checked.solution);
        }
        Err(reason) => {
            record.solution = Some(reply.text.trim().to_string());
            reject(record, reason);
        }
    }
    check_answer(record, problem.final_answer.as_deref());
}

/// A new problem built on the source's fact, kept when its self-check accepts it and its
/// solution marks an answer (there is no gold to compare it with).
fn expansion(record: &mut Record, reply: &Reply, problem: &Problem) {
    match replies::expansion(&reply.text) {
        Ok(expanded) => {
            self_checked(record, expanded.check);
            if same_text(&expanded.question, &problem.question) {
                reject(record, "same_as_source_problem");
            }
            record.question = Some(expanded.question);
            record.solution = Some(expanded.solution);
        }
        Err(reason) => {
            record.question = None;
            record.solution = Some(reply.text.trim().to_string());
            reject(record, reason);
        }
    }
    check_answer(record, None);
}

/// The student's attempt as the teacher judged it: a correct attempt as it stands; a wrong
/// one up to and including its first wrong step, then `[back]` and the teacher's
/// correction. Kept when the final answer is the gold one.
fn tutorship(record: &mut Record, attempt: &str, steps: &[std::ops::Range<usize>], review: &Reply, problem: &Problem) {
    match replies::review(&review.text) {
        Ok(Review::Correct) => {
            record.verdict = Some("correct".into());
            record.solution = Some(attempt.to_string());
        }
        Ok(Review::Wrong { step, correction }) => {
            record.verdict = Some("wrong".into());
            match steps.get(step - 1) {
                Some(wrong) => {
                    let marker = retrospective::MARKER;
                    record.solution = Some(format!("{} {marker} {}", &attempt[..wrong.end], correction.trim()));
                }
                None => {
                    record.solution = Some(attempt.to_string());
                    reject(record, "bad_step_number");
                }
            }
        }
        Err(reason) => {
            record.solution = Some(attempt.to_string());
            reject(record, reason);
        }
    }
    check_answer(record, problem.final_answer.as_deref());
}

/// The same text up to white space.
fn same_text(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

impl ModelSettings {
    /// The concurrency the writer allows: how many problems a run keeps in flight.
    pub fn in_flight(&self) -> usize {
        self.writer.concurrency.max(1)
    }
}
