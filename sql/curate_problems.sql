-- Problem curation: the analysis of every problem-solving record, then the training set.
--
--   mathlake sql sql/curate_problems.sql
--   mathlake sql sql/curate_problems.sql --set max_steps=20
--
-- `problem_signals` keeps one row per record of `problems` with its analysis, so a
-- threshold changes here (or with --set) and only the statements after it need rerunning.
--
-- @param min_steps = 1   -- a worked solution has at least one step besides the answer
-- @param max_steps = 60  -- beyond it (33 of MATH train) the count is mostly lines of [asy] diagram code, not reasoning

-- Every record with its final answer, steps, difficulty and completeness. The answer a
-- dataset gives (MATH500's `answer`, GSM8K's `#### N`, filled at ingest) wins over one
-- read off the solution.
COPY (
    SELECT id, source, split, level, subject, question, solution,
           coalesce(final_answer, final_answer(solution)) AS answer,
           normalize_answer(coalesce(final_answer, final_answer(solution))) AS normalized_answer,
           reasoning_steps(solution) AS steps,
           difficulty(reasoning_steps(solution)) AS difficulty,
           completeness(question, solution) AS completeness,
           input, position
    FROM problems
) TO 'problem_signals';

-- Training problems: complete records (a question, a worked solution, a marked final
-- answer: evaluation parses answers in those forms) with a plausible number of steps.
-- Evaluation splits never train: decontamination will check the rest against them.
COPY (
    SELECT *
    FROM problem_signals
    WHERE completeness = 'complete'
      AND steps BETWEEN $min_steps AND $max_steps
      AND split IS DISTINCT FROM 'test'
) TO 'training_problems';

-- Where every record went: training, an evaluation split, or the reason it was left out.
SELECT source, split,
       CASE
           WHEN split = 'test' THEN 'evaluation'
           WHEN completeness <> 'complete' THEN completeness
           WHEN steps < $min_steps THEN 'too_few_steps'
           WHEN steps > $max_steps THEN 'too_many_steps'
           ELSE 'training'
       END AS verdict,
       count(*) AS problems,
       sum(CASE WHEN difficulty = 'easy' THEN 1 ELSE 0 END) AS easy,
       sum(CASE WHEN difficulty = 'medium' THEN 1 ELSE 0 END) AS medium,
       sum(CASE WHEN difficulty = 'hard' THEN 1 ELSE 0 END) AS hard
FROM problem_signals
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;
