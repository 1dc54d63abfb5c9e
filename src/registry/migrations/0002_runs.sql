-- Monitoring (SPEC section 6): what the router's run recorder writes besides 0001's
-- columns, and the indexes `promptctl stats` reads through. The writer creates one
-- partition per day ahead of time (prompt_runs_YYYYMMDD) and retires old days by dropping
-- their partitions.

-- The errors of the models that failed before one answered (fallbacks).
ALTER TABLE prompt_runs ADD COLUMN attempt_errors TEXT;
-- Rendered input and output, only written with `[monitoring] store_io = true`.
ALTER TABLE prompt_runs ADD COLUMN input_text TEXT;
ALTER TABLE prompt_runs ADD COLUMN output_text TEXT;

-- Fleet-wide windows (`stats --since 24h` over every prompt).
CREATE INDEX prompt_runs_time ON prompt_runs (created_at);
