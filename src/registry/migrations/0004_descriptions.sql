-- The API's prompt list (`GET /v1/prompts`): each prompt's `description` as the synced
-- branch's tip holds it. Like the monitor assertions, it belongs to the prompt, not to a
-- version (changing it makes no version).
CREATE TABLE prompt_descriptions (
  service VARCHAR(100) NOT NULL,
  name VARCHAR(255) NOT NULL,
  description TEXT NOT NULL,
  PRIMARY KEY (service, name)
);

-- The list pages through prompts in (service, name) order, newest version first.
CREATE INDEX prompts_service_name_version ON prompts (service, name, version DESC);
