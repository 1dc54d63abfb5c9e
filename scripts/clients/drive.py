"""Drives the Python client that openapi-python-client generated, unmodified, from a
promptctl server's /openapi.json: lists prompts, pages through them, gets one by
environment, lists its versions, renders, runs, and reads a parsed 403 with a read token.

Usage: python drive.py PACKAGE_DIR BASE_URL READ_TOKEN RUN_TOKEN EXPECTED_PROMPTS
The registry is the one tests/generated_clients.rs syncs.
"""

import importlib
import pkgutil
import sys

package_dir, base_url, read_token, run_token, expected = sys.argv[1:6]
sys.path.insert(0, package_dir)
client_module = importlib.import_module("promptctl_client")
api = importlib.import_module("promptctl_client.api")
models = importlib.import_module("promptctl_client.models")


def operation(name):
    """The generated module of an operation id, whatever tag it was filed under."""
    for tag in pkgutil.iter_modules(api.__path__):
        try:
            return importlib.import_module(f"promptctl_client.api.{tag.name}.{name}")
        except ModuleNotFoundError:
            continue
    raise SystemExit(f"no generated function for operation {name}")


def check(condition, what):
    if not condition:
        raise SystemExit(f"python client: {what}")


reader = client_module.AuthenticatedClient(base_url=base_url, token=read_token)
runner = client_module.AuthenticatedClient(base_url=base_url, token=run_token)

# List, then page through every prompt two at a time.
list_prompts = operation("list_prompts")
first = list_prompts.sync(client=reader)
check(isinstance(first, models.PromptList), f"the list is a PromptList: {first!r}")
names = []
cursor = None
pages = 0
while True:
    kwargs = {"limit": 2}
    if cursor is not None:
        kwargs["cursor"] = cursor
    page = list_prompts.sync(client=reader, **kwargs)
    check(isinstance(page, models.PromptList), f"a page is a PromptList: {page!r}")
    pages += 1
    names.extend(f"{p.service}/{p.name}" for p in page.prompts)
    if not isinstance(page.next_cursor, str):
        break
    cursor = page.next_cursor
check(len(names) == int(expected), f"{len(names)} prompts listed, expected {expected}")
check(len(set(names)) == len(names), f"no prompt twice: {names}")
check(pages > 1, "more than one page")
filtered = list_prompts.sync(client=reader, service="billing", env="production", q="INV")
check([p.name for p in filtered.prompts] == ["invoice"], f"filters: {filtered!r}")

# One prompt by environment.
prompt = operation("get_prompt").sync(service="billing", name="invoice", client=reader, env="production")
check(isinstance(prompt, models.PromptBody), f"get_prompt: {prompt!r}")
check(prompt.version == 1 and prompt.model == "gpt-4o-mini", f"production's version: {prompt!r}")

# Its versions.
versions = operation("list_prompt_versions").sync(service="billing", name="invoice", client=reader, limit=1)
check(isinstance(versions, models.VersionList), f"versions: {versions!r}")
check([v.version for v in versions.versions] == [2], f"the newest version first: {versions!r}")
check(isinstance(versions.next_cursor, str), "a next page of versions")
older = operation("list_prompt_versions").sync(
    service="billing", name="invoice", client=reader, limit=1, cursor=versions.next_cursor
)
check([v.version for v in older.versions] == [1], f"then version 1: {older!r}")
check(older.versions[0].environments == ["production"], f"production runs version 1: {older!r}")

# Render and run.
body = models.RenderRequest.from_dict({"env": "production", "vars": {"x": "hello"}})
rendered = operation("render_prompt").sync(service="billing", name="invoice", client=reader, body=body)
check(isinstance(rendered, models.RenderResponse), f"render: {rendered!r}")
check(rendered.messages[0].content == "first hello", f"rendered: {rendered!r}")
ran = operation("run_prompt").sync(service="billing", name="invoice", client=runner, body=body)
check(isinstance(ran, models.RunResponse), f"run: {ran!r}")
check(ran.output == "first hello", f"ran: {ran!r}")

# A read token may not run: a parsed 403.
denied = operation("run_prompt").sync_detailed(service="billing", name="invoice", client=reader, body=body)
check(int(denied.status_code) == 403, f"403 for a read token: {denied.status_code}")
check(isinstance(denied.parsed, models.ErrorBody), f"a parsed error body: {denied.parsed!r}")
check(denied.parsed.error.code == "forbidden", f"the code: {denied.parsed!r}")
print("python client: ok")
