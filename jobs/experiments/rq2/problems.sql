-- RQ2's problems: the fixed sample of clean training problems that Base2 trains on and
-- that every synthesis method starts from, so that each synthesis arm and the token-matched
-- control add tokens about the very problems Base2 has. Ids are content hashes, so
-- `id < '014'` is a fixed random 0.5% of them: 82 problems of 19,572 tokens with the quick
-- start's tokenizer, about what RQ1's Test2 draws.
-- The synthesis stages read `final_answer`, the answer curation settled on.
COPY (
    SELECT id, source, split, level, question, solution, answer AS final_answer, steps, difficulty
    FROM training_problems_clean
    WHERE id < '014'
) TO 'rq2_problems';
