-- Document curation: quality signals, language and math score for every document, then
-- the split of the documents that pass into a math corpus and a general corpus.
--
--   mathlake sql sql/curate_documents.sql
--   mathlake sql sql/curate_documents.sql --set min_math_score=0.8
--
-- The first statement is the expensive one: it computes every signal once and keeps them
-- as columns of `document_signals`. The thresholds below act only on those columns, so
-- changing one means rerunning the cheap statements after it (or all, with --set).
--
-- Quality rules follow Gopher (Rae et al. 2021). Two of them would throw out good math
-- pages, where a formula is one long "word" without letters; pages the classifier calls
-- math (math_score >= min_math_score) get the relaxed `_math` bound instead.
-- @param min_words = 50                  -- Gopher: fewer words are navigation, stubs or captions
-- @param max_words = 100000              -- Gopher: more are dumps, logs and lists
-- @param min_mean_word_length = 3        -- Gopher: shorter means symbol soup or number tables
-- @param max_mean_word_length = 10       -- Gopher: longer means URLs, hashes or glued words
-- @param max_mean_word_length_math = 20  -- `$\sum_{n=1}^{\infty}\frac{1}{n^2}$` is one word; at 10, 12% of stackmathqa went
-- @param max_symbol_word_ratio = 0.1     -- Gopher: many `#` and `...` mark tag clouds and snippets
-- @param min_alpha_word_fraction = 0.8   -- Gopher: fewer words with letters means tables, code or numbers
-- @param min_alpha_word_fraction_math = 0.5 -- `$x^2+1=5$` and `2x` are words without letters
-- @param max_dup_line_fraction = 0.3     -- Gopher: repeated lines are boilerplate
-- @param max_dup_paragraph_fraction = 0.3 -- Gopher: repeated paragraphs likewise
-- @param max_top_2gram_fraction = 0.2    -- Gopher: one phrase over and over is spam
-- @param max_top_3gram_fraction = 0.18   -- Gopher
-- @param max_top_4gram_fraction = 0.16   -- Gopher
-- @param max_dup_5gram_fraction = 0.15   -- Gopher: text in repeated word 5-grams, each repeat once
-- @param max_dup_6gram_fraction = 0.14   -- Gopher
-- @param max_dup_7gram_fraction = 0.13   -- Gopher
-- @param max_dup_8gram_fraction = 0.12   -- Gopher
-- @param max_dup_9gram_fraction = 0.11   -- Gopher
-- @param max_dup_10gram_fraction = 0.10  -- Gopher
-- @param dup_ngram_slack_math = 2        -- math repeats its formulas: at Gopher's bounds 108 of 987 StackMathQA pages went, at twice them 12
-- @param max_bullet_line_fraction = 0.9  -- Gopher: all bullets is a menu, not prose
-- @param max_ellipsis_line_fraction = 0.3 -- Gopher: cut-off lines are teasers
-- @param max_lorem_ipsum = 0              -- C4: a placeholder page is a template, not content
-- C4's other page and line rules are columns to cut on, not rules here: it drops lines that
-- mention javascript or a cookie or terms-of-use notice (javascript_line_fraction,
-- policy_line_fraction say how much of a page they are) and every page with a `{`
-- (curly_brace_count), which would drop all LaTeX.
-- @param language = 'eng'                -- the study's corpora are English
-- @param min_language_confidence = 0.5   -- below this the language guess is noise (short or formula-heavy text)
-- The split: math_score is the probability that a text is mathematical (`mathlake
-- classifier eval` measures it); 0.5 is its decision threshold, raise it for a purer math corpus.
-- @param min_math_score = 0.5

-- Every signal of every document, once. `input` and `position` (where it was ingested
-- from) go along, so that dedup keeps the copy ingested first.
COPY (
    SELECT id, source, url, text, input, position,
           q['word_count'] AS word_count,
           q['mean_word_length'] AS mean_word_length,
           q['symbol_word_ratio'] AS symbol_word_ratio,
           q['punct_line_fraction'] AS punct_line_fraction,
           q['alpha_word_fraction'] AS alpha_word_fraction,
           q['dup_line_fraction'] AS dup_line_fraction,
           q['dup_paragraph_fraction'] AS dup_paragraph_fraction,
           q['top_2gram_fraction'] AS top_2gram_fraction,
           q['top_3gram_fraction'] AS top_3gram_fraction,
           q['top_4gram_fraction'] AS top_4gram_fraction,
           q['bullet_line_fraction'] AS bullet_line_fraction,
           q['ellipsis_line_fraction'] AS ellipsis_line_fraction,
           q['dup_5gram_fraction'] AS dup_5gram_fraction,
           q['dup_6gram_fraction'] AS dup_6gram_fraction,
           q['dup_7gram_fraction'] AS dup_7gram_fraction,
           q['dup_8gram_fraction'] AS dup_8gram_fraction,
           q['dup_9gram_fraction'] AS dup_9gram_fraction,
           q['dup_10gram_fraction'] AS dup_10gram_fraction,
           q['javascript_line_fraction'] AS javascript_line_fraction,
           q['policy_line_fraction'] AS policy_line_fraction,
           q['lorem_ipsum_count'] AS lorem_ipsum_count,
           q['curly_brace_count'] AS curly_brace_count,
           q['non_ascii_ratio'] AS non_ascii_ratio,
           q['stop_word_count'] AS stop_word_count,
           lang['code'] AS language,
           lang['confidence'] AS language_confidence,
           math_score AS math_score
    FROM (
        SELECT id, source, url, text, input, position,
               quality_signals(text) AS q, language(text) AS lang, math_score(text) AS math_score
        FROM documents
    )
) TO 'document_signals';

-- Each document's verdict: the first rule it fails, or 'pass'.
CREATE VIEW document_verdicts AS
SELECT *,
       CASE
           WHEN word_count < $min_words THEN 'too_few_words'
           WHEN word_count > $max_words THEN 'too_many_words'
           WHEN mean_word_length < $min_mean_word_length
             OR mean_word_length > CASE WHEN math_score >= $min_math_score
                                        THEN $max_mean_word_length_math ELSE $max_mean_word_length END
                THEN 'word_length'
           WHEN symbol_word_ratio > $max_symbol_word_ratio THEN 'symbols'
           WHEN alpha_word_fraction < CASE WHEN math_score >= $min_math_score
                                           THEN $min_alpha_word_fraction_math ELSE $min_alpha_word_fraction END
                THEN 'few_alpha_words'
           WHEN dup_line_fraction > $max_dup_line_fraction THEN 'duplicate_lines'
           WHEN dup_paragraph_fraction > $max_dup_paragraph_fraction THEN 'duplicate_paragraphs'
           WHEN top_2gram_fraction > $max_top_2gram_fraction
             OR top_3gram_fraction > $max_top_3gram_fraction
             OR top_4gram_fraction > $max_top_4gram_fraction THEN 'repetition'
           WHEN greatest(dup_5gram_fraction / $max_dup_5gram_fraction, dup_6gram_fraction / $max_dup_6gram_fraction,
                         dup_7gram_fraction / $max_dup_7gram_fraction, dup_8gram_fraction / $max_dup_8gram_fraction,
                         dup_9gram_fraction / $max_dup_9gram_fraction, dup_10gram_fraction / $max_dup_10gram_fraction)
                > CASE WHEN math_score >= $min_math_score THEN $dup_ngram_slack_math ELSE 1 END
                THEN 'duplicate_ngrams'
           WHEN bullet_line_fraction > $max_bullet_line_fraction THEN 'bullets'
           WHEN ellipsis_line_fraction > $max_ellipsis_line_fraction THEN 'ellipses'
           WHEN lorem_ipsum_count > $max_lorem_ipsum THEN 'lorem_ipsum'
           WHEN (language IS DISTINCT FROM $language)
             OR language_confidence < $min_language_confidence THEN 'language'
           ELSE 'pass'
       END AS verdict
FROM document_signals;

-- The math corpus (the study's OpenWebMath-like web math text) ...
COPY (
    SELECT id, source, url, text, math_score, word_count, input, position
    FROM document_verdicts
    WHERE verdict = 'pass' AND math_score >= $min_math_score
) TO 'math_documents';

-- ... and the general corpus.
COPY (
    SELECT id, source, url, text, math_score, word_count, input, position
    FROM document_verdicts
    WHERE verdict = 'pass' AND math_score < $min_math_score
) TO 'general_documents';

-- Where every document went.
SELECT source,
       CASE WHEN verdict <> 'pass' THEN verdict
            WHEN math_score >= $min_math_score THEN 'math'
            ELSE 'general' END AS outcome,
       count(*) AS documents,
       round(avg(math_score), 3) AS mean_math_score
FROM document_verdicts
GROUP BY 1, 2
ORDER BY 1, 2;
