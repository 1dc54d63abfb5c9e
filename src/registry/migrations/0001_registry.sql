-- The registry's tables (SPEC section 4). `prompts` and `prompt_tests` keep the classic
-- registry's names and columns so existing queries keep working; the columns after
-- `commit_sha` are what a Git-backed registry adds.

CREATE TABLE prompts (
  id UUID PRIMARY KEY,
  name VARCHAR(255) NOT NULL,
  service VARCHAR(100) NOT NULL,
  version INTEGER NOT NULL,
  template TEXT NOT NULL,
  model VARCHAR(50) NOT NULL,
  parameters JSONB,
  created_at TIMESTAMP DEFAULT NOW(),
  created_by VARCHAR(100),
  commit_sha TEXT NOT NULL,
  commit_message TEXT,
  archived BOOLEAN NOT NULL DEFAULT FALSE,
  -- 'template' (the column holds the template) or 'messages' (it holds the messages' JSON).
  template_format VARCHAR(10) NOT NULL DEFAULT 'template'
    CHECK (template_format IN ('template', 'messages')),
  -- The declared variables (type, required, default), so a read version renders strictly.
  variables JSONB,
  -- The partials (path -> text) at the version's commit when its template includes any.
  partials JSONB,
  UNIQUE (name, service, version)
);

CREATE TABLE prompt_tests (
  id UUID PRIMARY KEY,
  prompt_id UUID REFERENCES prompts(id),
  test_input TEXT NOT NULL,
  expected_output TEXT,
  evaluation_criteria JSONB,
  created_at TIMESTAMP DEFAULT NOW(),
  -- The test's name in the prompt file, when it has one.
  test_name TEXT
);
CREATE INDEX prompt_tests_prompt_id ON prompt_tests (prompt_id);

-- Which version and model each environment uses (environments.yaml at the synced commit).
-- A NULL version means `latest`; a NULL model means the prompt's own model. A prompt with
-- no row for an environment uses its latest version and its own model there.
CREATE TABLE prompt_environments (
  service VARCHAR(100) NOT NULL,
  name VARCHAR(255) NOT NULL,
  environment VARCHAR(100) NOT NULL,
  version INTEGER,
  model VARCHAR(100),
  PRIMARY KEY (service, name, environment)
);

-- The last commit each branch was synced at.
CREATE TABLE sync_state (
  branch TEXT PRIMARY KEY,
  commit_sha TEXT NOT NULL,
  synced_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- Every execution of a prompt through the router (SPEC section 6), partitioned by time so
-- that retention drops partitions instead of deleting rows; rows land in the default
-- partition until per-day partitions are created.
CREATE TABLE prompt_runs (
  run_id UUID NOT NULL,
  trace_id TEXT,
  prompt_id UUID,
  service VARCHAR(100) NOT NULL,
  name VARCHAR(255) NOT NULL,
  version INTEGER,
  environment VARCHAR(100),
  model_requested VARCHAR(100),
  model_used VARCHAR(100),
  provider VARCHAR(50),
  latency_ms DOUBLE PRECISION,
  input_tokens INTEGER,
  output_tokens INTEGER,
  cache_read_tokens INTEGER,
  cache_write_tokens INTEGER,
  cost_usd DOUBLE PRECISION,
  error TEXT,
  quality_score DOUBLE PRECISION,
  sampled BOOLEAN NOT NULL DEFAULT FALSE,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  PRIMARY KEY (run_id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE prompt_runs_default PARTITION OF prompt_runs DEFAULT;
CREATE INDEX prompt_runs_prompt_time ON prompt_runs (service, name, environment, created_at);
