-- Monitoring from the registry (SPEC section 6): each prompt's `monitor` assertions as the
-- synced branch's tip holds them, so that a router reading prompts from PostgreSQL scores
-- its sampled runs as one reading the repository does. The assertions belong to the
-- prompt, not to a version (they make no version), and apply to whichever version runs.
CREATE TABLE prompt_monitors (
  service VARCHAR(100) NOT NULL,
  name VARCHAR(255) NOT NULL,
  assertions JSONB NOT NULL,
  PRIMARY KEY (service, name)
);
