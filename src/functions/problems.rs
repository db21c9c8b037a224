//! Problems: what a solution answers, how many steps it takes, and whether the record is
//! complete.

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, Int64Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{Signature, Volatility};

use super::{Function, doc, map_text, section};
use crate::text::{self, texts};

pub(super) fn functions() -> Vec<Function> {
    let mut functions = Vec::new();
    let problems = section("Problems", "analysis of problem-solving records");
    functions.push(Function {
        name: "final_answer",
        signature: Signature::string(1, Volatility::Immutable),
        returns: DataType::Utf8,
        doc: doc(
            &problems,
            "the answer a solution marks (`#### N`, the last `\\boxed{}` or `\\fbox{}`), else its last number",
            "final_answer(solution)",
        ),
        eval: Box::new(|args| map_text::<_, StringArray>(&args[0], text::final_answer)),
    });
    functions.push(Function {
        name: "normalize_answer",
        signature: Signature::string(1, Volatility::Immutable),
        returns: DataType::Utf8,
        doc: doc(
            &problems,
            "an answer as graders compare it (MATH's normalization, plain numbers: `\\dfrac12`, `1/2` agree)",
            "normalize_answer(answer)",
        ),
        eval: Box::new(|args| map_text::<_, StringArray>(&args[0], |t| Some(text::normalize_answer(t)))),
    });
    functions.push(Function {
        name: "reasoning_steps",
        signature: Signature::string(1, Volatility::Immutable),
        returns: DataType::Int64,
        doc: doc(
            &problems,
            "steps in a solution: its sentences and displayed-math rows, outside the `####` line",
            "reasoning_steps(solution)",
        ),
        eval: Box::new(|args| map_text::<_, Int64Array>(&args[0], |t| Some(text::reasoning_steps(t) as i64))),
    });
    functions.push(Function {
        name: "difficulty",
        signature: Signature::exact(vec![DataType::Int64], Volatility::Immutable),
        returns: DataType::Utf8,
        doc: doc(
            &problems,
            "difficulty bucket of a step count: 'easy' (up to 3), 'medium' (up to 6), 'hard'",
            "difficulty(reasoning_steps(solution))",
        ),
        eval: Box::new(|args| {
            let steps = args[0].as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            Ok(Arc::new(steps.iter().map(|s| s.map(|s| text::difficulty(s.max(0) as u64))).collect::<StringArray>()))
        }),
    });
    functions.push(Function {
        name: "completeness",
        signature: Signature::string(2, Volatility::Immutable),
        returns: DataType::Utf8,
        doc: doc(
            &problems,
            "'complete', or what a record lacks: 'missing_question', 'missing_solution', 'missing_final_answer'",
            "completeness(question, solution)",
        ),
        eval: Box::new(|args| {
            let questions = texts(&args[0])?;
            let solutions = texts(&args[1])?;
            Ok(Arc::new(
                questions
                    .zip(solutions)
                    .map(|(q, s)| Some(text::completeness(q.unwrap_or(""), s.unwrap_or(""))))
                    .collect::<StringArray>(),
            ))
        }),
    });
    functions
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::ArrayRef;

    use super::*;
    use crate::functions::call;

    #[test]
    fn answers_and_steps_from_sql_types() {
        let solutions: ArrayRef =
            Arc::new(StringArray::from(vec![Some("x = 1.\nSo 2x = 2.\n#### 2"), Some("$\\boxed{\\dfrac12}$"), None]));
        let answers = call("final_answer", vec![solutions.clone()]);
        let answers = answers.as_string::<i32>();
        assert_eq!(answers.value(0), "2");
        assert_eq!(answers.value(1), "\\dfrac12");
        let normalized = call("normalize_answer", vec![Arc::new(answers.clone())]);
        assert_eq!(normalized.as_string::<i32>().value(1), "\\frac{1}{2}");
        let steps = call("reasoning_steps", vec![solutions]);
        assert_eq!(steps.as_primitive::<datafusion::arrow::datatypes::Int64Type>().value(0), 2);
    }

    #[test]
    fn difficulty_buckets_and_completeness() {
        let steps: ArrayRef = Arc::new(Int64Array::from(vec![Some(3), Some(4), Some(7), None]));
        let buckets = call("difficulty", vec![steps]);
        let buckets: Vec<_> = buckets.as_string::<i32>().iter().collect();
        assert_eq!(buckets, [Some("easy"), Some("medium"), Some("hard"), None]);
        let questions: ArrayRef =
            Arc::new(StringArray::from(vec![Some("What is 1+1?"), Some(""), Some("Why?"), Some("Why?")]));
        // A NULL solution marks no answer; an answer with no working is no solution.
        let solutions: ArrayRef =
            Arc::new(StringArray::from(vec![Some("1+1=2.\n#### 2"), Some("1+1=2.\n#### 2"), Some("#### 2"), None]));
        let verdicts = call("completeness", vec![questions, solutions]);
        let verdicts: Vec<_> = verdicts.as_string::<i32>().iter().collect();
        assert_eq!(
            verdicts,
            [Some("complete"), Some("missing_question"), Some("missing_solution"), Some("missing_final_answer")]
        );
    }
}
