-- Sources (one registry for many repositories): every row sync writes names the source
-- (the repository) that published it. '' is the unnamed source of a registry synced
-- before this migration; the first sync that names a source and whose repository holds
-- the legacy branch's synced commit adopts those rows (README, "Sources"). No id changes:
-- a version's id stays UUID v5 of service/name/version, and `prompt_owners` keeps
-- service/name unique across the registry.

ALTER TABLE prompts ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE prompt_tests ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE prompt_environments ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE prompt_monitors ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE prompt_descriptions ADD COLUMN source TEXT NOT NULL DEFAULT '';
-- Runs name the source of the version run, when the writer knows it.
ALTER TABLE prompt_runs ADD COLUMN source TEXT NOT NULL DEFAULT '';

-- The last commit each branch of each source was synced at.
ALTER TABLE sync_state ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE sync_state DROP CONSTRAINT sync_state_pkey;
ALTER TABLE sync_state ADD PRIMARY KEY (source, branch);

-- Which source owns each service/name: a sync claims its prompts here inside its
-- transaction, so two sources publishing one name at once cannot both win (the second
-- waits on the first's row, then finds it owned).
CREATE TABLE prompt_owners (
  service VARCHAR(100) NOT NULL,
  name VARCHAR(255) NOT NULL,
  source TEXT NOT NULL,
  PRIMARY KEY (service, name)
);
INSERT INTO prompt_owners (service, name, source)
  SELECT DISTINCT service, name, '' FROM prompts;
CREATE INDEX prompt_owners_source ON prompt_owners (source);

-- A sync reads and deletes its own source's rows only.
CREATE INDEX prompts_source ON prompts (source, service, name, version);
CREATE INDEX prompt_tests_source ON prompt_tests (source);
CREATE INDEX prompt_environments_source ON prompt_environments (source);
