# Sourced by the benchmark scripts (`. "$(dirname "$0")/bench-lib.sh"`): what each needs
# before it measures, written once.

# A sealed Git configuration and a fixed author, so that commits made by a benchmark are
# the same on every machine.
bench_git_identity() {
  export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
  export GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=bench@example.com
  export GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=bench@example.com
}

# Prints the absolute path of the promptctl binary to measure: $PROMPTCTL_BIN when set (a
# debug build for a quick run, or another version), else the release build of this checkout,
# built first.
bench_binary() {
  local root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if [ -n "${PROMPTCTL_BIN:-}" ]; then
    realpath "$PROMPTCTL_BIN"
  else
    echo "building promptctl (release)..." >&2
    (cd "$root" && cargo build --release --quiet --bin promptctl)
    echo "${CARGO_TARGET_DIR:-$root/target}/release/promptctl"
  fi
}

# Installs, from Debian's packages, the package of each `command:package` whose command is
# missing (needs root).
bench_need() {
  local pair missing=()
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] ||
      missing+=("${pair#*:}")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# The registry both serve benchmarks read: a repository at $1 holding one prompt,
# `billing/invoice_summary`, pinned in `production`, synced by the binary $2 into the
# database $4 (made anew) of the server whose admin URL is $3.
bench_invoice_registry() {
  local repo=$1 bin=$2 admin=$3 db=$4
  rm -rf "$repo" && mkdir -p "$repo/prompts/billing"
  git -C "$repo" init -q -b main
  cat > "$repo/prompts/billing/invoice_summary.yaml" <<'YAML'
model: gpt-4o
parameters: {temperature: 0.2, max_tokens: 400}
variables:
  customer: {type: string}
  amount: {type: number}
  items: {type: array, default: []}
messages:
  - role: system
    content: "You summarise invoices for the billing team. Be brief and exact."
  - role: user
    content: "Customer {{ customer }} owes {{ amount }} USD for {% for i in items %}{{ i }}{% if not loop.last %}, {% endif %}{% endfor %}. Summarise."
YAML
  cat > "$repo/environments.yaml" <<'YAML'
prompts:
  invoice_summary:
    production: {version: 1, model: gpt-4o-mini}
YAML
  git -C "$repo" add -A && git -C "$repo" commit -qm "invoice summary"
  psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
  (cd "$repo" && "$bin" sync --database-url "${admin%/*}/$db" >/dev/null)
}
