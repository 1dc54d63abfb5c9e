-- Rollups (README, "Monitoring at scale"): per minute, hour and day (UTC), one row per
-- bucket and key (source, prompt, version, environment, model, failed) with the runs'
-- counts, token, cost and quality sums and a latency sketch (`sketch.rs`: DDSketch, 1 %).
-- `stats`, `/v1/stats` and the dashboard read whole buckets here and raw runs only for the
-- partial bucket at each end of a window.
--
-- The run recorder appends partial rows (`partial`) about a second after it writes the
-- runs; a compaction step merges each key's rows of a bucket into one. Readers add up every
-- row of a key, so a reading is right before and after compaction. Keys are NOT NULL ('' or
-- 0 for none) so that rows of one key compare equal.
CREATE TABLE prompt_rollups (
  width INTEGER NOT NULL CHECK (width IN (60, 3600, 86400)),
  bucket TIMESTAMPTZ NOT NULL,
  source TEXT NOT NULL,
  service VARCHAR(100) NOT NULL,
  name VARCHAR(255) NOT NULL,
  version INTEGER NOT NULL,
  environment VARCHAR(100) NOT NULL,
  model VARCHAR(100) NOT NULL,
  failed BOOLEAN NOT NULL,
  calls BIGINT NOT NULL,
  input_tokens BIGINT NOT NULL,
  output_tokens BIGINT NOT NULL,
  cache_read_tokens BIGINT NOT NULL,
  cache_write_tokens BIGINT NOT NULL,
  cost_usd DOUBLE PRECISION NOT NULL,
  quality_sum DOUBLE PRECISION NOT NULL,
  quality_count BIGINT NOT NULL,
  latency BYTEA NOT NULL,
  partial BOOLEAN NOT NULL DEFAULT TRUE
) PARTITION BY LIST (width);
CREATE TABLE prompt_rollups_minute PARTITION OF prompt_rollups FOR VALUES IN (60);
CREATE TABLE prompt_rollups_hour PARTITION OF prompt_rollups FOR VALUES IN (3600);
CREATE TABLE prompt_rollups_day PARTITION OF prompt_rollups FOR VALUES IN (86400);
CREATE INDEX prompt_rollups_time ON prompt_rollups (width, bucket);
CREATE INDEX prompt_rollups_prompt ON prompt_rollups (width, service, name, bucket);
CREATE INDEX prompt_rollups_partial ON prompt_rollups (width, bucket) WHERE partial;

-- The dashboard's recent runs list a prompt's sampled quality failures first.
CREATE INDEX prompt_runs_sampled ON prompt_runs (service, name, environment, created_at)
  WHERE sampled;

-- From when the rollups hold every run: the recorder rolls up what it writes from this
-- migration on; `promptctl rollup` moves the time back as it rolls up older runs. Readers
-- take runs before it from `prompt_runs`. `recorder_seen_at`: when a recorder last
-- appended rollups (`promptctl rollup` leaves the last hour to a recorder seen lately).
CREATE TABLE prompt_rollup_state (
  singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
  complete_from TIMESTAMPTZ NOT NULL,
  recorder_seen_at TIMESTAMPTZ
);
INSERT INTO prompt_rollup_state (complete_from) VALUES (now());
