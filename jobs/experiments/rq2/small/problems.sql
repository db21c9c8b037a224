-- RQ2's problems at small scale (jobs/experiments/rq2-small.toml): `id < '1b'`, 1,420
-- problems of 301,151 tokens with the quick start's tokenizer, sixteen times what Test2
-- draws (18,842), so that Base2's problem share stays RQ1's 5:5 when every other budget is
-- sixteen times the tiny one, and the control can draw 262,144 tokens of them again.
-- The synthesis stages read `final_answer`, the answer curation settled on.
COPY (
    SELECT id, source, split, level, question, solution, answer AS final_answer, steps, difficulty
    FROM training_problems_clean
    WHERE id < '1b'
) TO 'rq2_small_problems';
