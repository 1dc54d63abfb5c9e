-- Canary splits (README, "Canary releases"): an environment may send a share of its calls
-- to a canary (`canary:` inside it in environments.yaml). Sync writes what the canary side
-- runs, resolved over the environment's own pin: its version (NULL: latest), its model
-- (NULL: the prompt's own) and its weight, the percentage of calls it takes (NULL: the
-- environment has no canary); `canary_since`: the time of the commit that last changed
-- the split (the environment's pin or its canary), from which `canary status` and the
-- dashboard compare the sides.
ALTER TABLE prompt_environments
  ADD COLUMN canary_version INTEGER,
  ADD COLUMN canary_model VARCHAR(100),
  ADD COLUMN canary_weight DOUBLE PRECISION,
  ADD COLUMN canary_since TIMESTAMPTZ;

-- Which side of its environment's split a run took: 'baseline' or 'canary'; NULL for a
-- run outside a split.
ALTER TABLE prompt_runs ADD COLUMN side TEXT;

-- The rollups keep the sides apart ('' outside a split), so that both can be read from
-- them.
ALTER TABLE prompt_rollups ADD COLUMN side TEXT NOT NULL DEFAULT '';
