// Drives the TypeScript client that openapi-typescript + openapi-fetch make, unmodified,
// from a promptctl server's /openapi.json (type-checked with `tsc --strict`): lists
// prompts, pages through them, gets one by environment, lists its versions, renders,
// runs, and reads a parsed 403 with a read token.
//
// Usage: node drive.js BASE_URL READ_TOKEN RUN_TOKEN EXPECTED_PROMPTS

import createClient from "openapi-fetch";
import type { paths } from "./schema.js";

const [baseUrl, readToken, runToken, expected] = process.argv.slice(2);

function check(condition: boolean, what: string): void {
  if (!condition) {
    console.error(`typescript client: ${what}`);
    process.exit(1);
  }
}

const reader = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${readToken}` } });
const runner = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${runToken}` } });

async function main(): Promise<void> {
  // List, then page through every prompt two at a time.
  const first = await reader.GET("/v1/prompts");
  check(first.data !== undefined, `the list: ${JSON.stringify(first.error)}`);
  const names: string[] = [];
  // The cursor of each page, the first page's none.
  const cursors: (string | undefined)[] = [undefined];
  let pages = 0;
  for (;;) {
    const page = await reader.GET("/v1/prompts", {
      params: { query: { limit: 2, cursor: cursors[pages] } },
    });
    if (page.data === undefined) {
      check(false, `a page: ${JSON.stringify(page.error)}`);
      return;
    }
    pages += 1;
    for (const prompt of page.data.prompts) {
      names.push(`${prompt.service}/${prompt.name}`);
    }
    const next = page.data.next_cursor;
    if (typeof next !== "string") {
      break;
    }
    cursors.push(next);
  }
  check(names.length === Number(expected), `${names.length} prompts listed, expected ${expected}`);
  check(new Set(names).size === names.length, `no prompt twice: ${names}`);
  check(pages > 1, "more than one page");
  const filtered = await reader.GET("/v1/prompts", {
    params: { query: { service: "billing", env: "production", q: "INV" } },
  });
  check(
    JSON.stringify(filtered.data?.prompts.map((p) => p.name)) === '["invoice"]',
    `filters: ${JSON.stringify(filtered.data)}`,
  );

  // One prompt by environment.
  const prompt = await reader.GET("/v1/prompts/{service}/{name}", {
    params: { path: { service: "billing", name: "invoice" }, query: { env: "production" } },
  });
  check(
    prompt.data?.version === 1 && prompt.data?.model === "gpt-4o-mini",
    `production's version: ${JSON.stringify(prompt.data ?? prompt.error)}`,
  );

  // Its versions.
  const path = { service: "billing", name: "invoice" };
  const versions = await reader.GET("/v1/prompts/{service}/{name}/versions", {
    params: { path, query: { limit: 1 } },
  });
  check(versions.data?.versions[0]?.version === 2, `the newest version first: ${JSON.stringify(versions.data)}`);
  const after: string | null | undefined = versions.data?.next_cursor;
  check(typeof after === "string", "a next page of versions");
  const older = await reader.GET("/v1/prompts/{service}/{name}/versions", {
    params: { path, query: { limit: 1, cursor: after ?? undefined } },
  });
  check(older.data?.versions[0]?.version === 1, `then version 1: ${JSON.stringify(older.data)}`);
  check(
    JSON.stringify(older.data?.versions[0]?.environments) === '["production"]',
    `production runs version 1: ${JSON.stringify(older.data)}`,
  );

  // Render and run.
  const body = { env: "production", vars: { x: "hello" } };
  const rendered = await reader.POST("/v1/prompts/{service}/{name}/render", { params: { path }, body });
  check(rendered.data?.messages[0]?.content === "first hello", `rendered: ${JSON.stringify(rendered.data ?? rendered.error)}`);
  const ran = await runner.POST("/v1/prompts/{service}/{name}/run", { params: { path }, body });
  check(ran.data?.output === "first hello", `ran: ${JSON.stringify(ran.data ?? ran.error)}`);

  // A read token may not run: a parsed 403.
  const denied = await reader.POST("/v1/prompts/{service}/{name}/run", { params: { path }, body });
  check(denied.response.status === 403, `403 for a read token: ${denied.response.status}`);
  check(denied.error?.error.code === "forbidden", `the code: ${JSON.stringify(denied.error)}`);
  console.log("typescript client: ok");
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
