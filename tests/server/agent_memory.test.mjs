// Agent memory end to end with the shipped chat model, through `engram serve` (the official
// `openai` client for chat completions, fetch for the /v1/memories REST API) and through
// `engram chat --memory-db`/`--pg`, each on both store backends: SQLite, and the PostgreSQL
// server scripts/test_server.sh starts (scripts/with_postgres.sh; every suite gets a database of
// its own). Every assertion is about what the system does -- which memories reach a prompt,
// what the store holds, who can see what -- never about what the small model happens to answer.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";

import { BIN, ROOT, startServer, tempDir } from "./server_harness.mjs";

const MODEL = "engram-tiny-chat";
const PG_BIN = "/usr/lib/postgresql/15/bin";
// The sensitive-data detector's table of cases (the C++ test asserts the rules' column).
const CASES = JSON.parse(
  fs.readFileSync(path.join(ROOT, "tests/fixtures/agent_memory/sensitive_cases.json"), "utf8")).cases;
const FLAGGED = CASES.filter((c) => c.rules.length > 0);

const sha256 = (...parts) => {
  const h = crypto.createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
};

// A new database on the test PostgreSQL server; its URL.
function freshPgDatabase(name) {
  const base = process.env.ENGRAM_TEST_PG;
  if (!base) {
    throw new Error("ENGRAM_TEST_PG is not set: run the suites through scripts/test_server.sh, " +
      "which starts PostgreSQL (scripts/with_postgres.sh) and sets it");
  }
  const u = new URL(base);
  const db = `engram_${name}_${process.pid}`;
  const r = spawnSync(`${PG_BIN}/createdb`, ["-h", u.hostname, "-p", u.port, "-U", u.username, db],
    { encoding: "utf8", timeout: 30000 });
  if (r.status !== 0) throw new Error(`createdb ${db}: ${r.stderr}`);
  u.pathname = `/${db}`;
  return u.toString();
}

// The two backends. `contents()` is what the store holds, as bytes: SQLite's file and write-ahead
// log; PostgreSQL's data as pg_dump writes it (every row of every table and the sequences).
const BACKENDS = [
  {
    name: "SQLite",
    open(dir) {
      const db = path.join(dir, "memory.db");
      return {
        serve: ["--memory-db", db], chat: ["--memory-db", db], memory: ["--db", db],
        contents: () => Buffer.concat([db, `${db}-wal`].map((f) => fs.existsSync(f) ? fs.readFileSync(f) : Buffer.alloc(0))),
        // Forgotten words must be gone from the file itself (the WAL is checkpointed).
        file: () => fs.readFileSync(db),
      };
    },
  },
  {
    name: "PostgreSQL",
    open(dir, name) {
      const url = freshPgDatabase(name);
      const contents = () => {
        const r = spawnSync(`${PG_BIN}/pg_dump`, ["--data-only", "--no-owner", url],
          { maxBuffer: 1 << 28, timeout: 60000 });
        if (r.status !== 0) throw new Error(`pg_dump: ${r.stderr}`);
        // Without the \restrict lines, whose key pg_dump draws at random for every dump.
        return Buffer.from(r.stdout.toString().split("\n").filter((l) => !/^\\(un)?restrict /.test(l)).join("\n"));
      };
      return { serve: ["--memory-pg", url], chat: ["--pg", url], memory: ["--pg", url], contents, file: contents };
    },
  },
];

for (const backend of BACKENDS) describe(`engram serve with agent memory (${backend.name})`, () => {
  let server, dir, store, alice, bob;
  const storeHash = () => sha256(store.contents());

  // fetch on the server with a key; returns { status, json, headers }.
  async function call(key, method, route, body) {
    const r = await fetch(`${server.base}${route}`, {
      method,
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await r.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: r.status, json, text, headers: r.headers };
  }
  const list = async (key) => (await call(key, "GET", "/v1/memories")).json.results;
  // One chat turn; returns the reply and the ids of the memories its prompt showed.
  async function say(client, content, extra = {}) {
    const { data, response } = await client.chat.completions
      .create({ model: MODEL, max_tokens: 24, temperature: 0, messages: [{ role: "user", content }], ...extra })
      .withResponse();
    const shown = response.headers.get("x-engram-memories");
    return { text: data.choices[0].message.content, shown: shown ? shown.split(",") : [] };
  }
  const endConversation = (key, conversation) =>
    call(key, "POST", "/v1/memories/end", conversation ? { conversation } : {});

  before(async () => {
    dir = tempDir("agent-memory");
    store = backend.open(dir, "serve");
    server = await startServer([
      ...store.serve, "--api-key", "key-a:alice", "--api-key", "key-b:bob", "--api-key", "key-c",
      "--max-body", "1", "-q",
    ]);
    alice = new OpenAI({ baseURL: server.url, apiKey: "key-a", maxRetries: 0 });
    bob = new OpenAI({ baseURL: server.url, apiKey: "key-b", maxRetries: 0 });
  });

  after(async () => {
    const stopped = await server?.stop();
    assert.equal(stopped?.code, 0, server?.log);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("a remembered fact comes back in a later conversation's prompt", async () => {
    const r = await say(alice, "Remember that my sister is called Maren.");
    assert.match(r.text, /remember/i);
    const mine = await list("key-a");
    const maren = mine.find((m) => m.memory.includes("Maren"));
    assert.ok(maren, JSON.stringify(mine));
    assert.equal(maren.user_id, "alice");
    assert.equal(maren.explicit_request, true);
    assert.equal((await endConversation("key-a")).status, 200);
    // A new conversation: the memory is retrieved into the prompt.
    const later = await say(alice, "What is my sister called?");
    assert.ok(later.shown.includes(maren.id), `shown ${later.shown}`);
    assert.doesNotMatch(later.text, /\[\d+\]/);  // citations never reach the client
    // Streamed, the same: no citation marker in any chunk.
    const stream = await alice.chat.completions.create({
      model: MODEL, max_tokens: 24, temperature: 0, stream: true,
      messages: [{ role: "user", content: "Who is Maren?" }],
    });
    let text = "";
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? "";
    assert.doesNotMatch(text, /\[\d+\]/);
    // Bob's prompts never see it.
    const b = await say(bob, "What is my sister called?");
    assert.ok(!b.shown.includes(maren.id));
    assert.deepEqual(await list("key-b"), []);
  });

  test("a forgotten fact never comes back: prompts, search, list, history text", async () => {
    await say(alice, "Remember that my cat is called Pixel.");
    const pixel = (await list("key-a")).find((m) => m.memory.includes("Pixel"));
    assert.ok(pixel);
    const f = await say(alice, "Forget that my cat is called Pixel.");
    assert.match(f.text, /forgot 1 memory/);
    for (const q of ["What is my cat called?", "Pixel", "Tell me about my cat Pixel."]) {
      assert.ok(!(await say(alice, q)).shown.includes(pixel.id));
    }
    assert.ok(!(await list("key-a")).some((m) => m.memory.includes("Pixel")));
    const s = await call("key-a", "POST", "/v1/memories/search", { query: "Pixel cat", limit: 20 });
    assert.equal(s.status, 200);
    assert.ok(!s.json.results.some((m) => m.id === pixel.id || m.memory.includes("Pixel")));
    assert.equal((await call("key-a", "GET", `/v1/memories/${pixel.id}`)).status, 404);
    const h = await call("key-a", "GET", `/v1/memories/${pixel.id}/history`);
    assert.equal(h.status, 200);
    assert.deepEqual(h.json.map((e) => e.event), ["ADD", "DELETE"]);
    assert.ok(!h.text.includes("Pixel"), h.text);
    // The conversation that said it ends: reflection does not bring it back.
    await endConversation("key-a");
    assert.ok(!(await list("key-a")).some((m) => m.memory.includes("Pixel")));
    assert.ok(!store.file().includes("Pixel"), "the words are gone from the store's bytes");
  });

  test("a temporary chat leaves the store byte-identical", async () => {
    await endConversation("key-a");
    const before = storeHash();
    for (const content of ["Remember that my brother is called Tomas.", "My brother Tomas lives in Oslo.",
      "Forget my sister.", "What do you remember about me?", "What is my sister called?"]) {
      const r = await say(alice, content, { temporary: true });
      assert.deepEqual(r.shown, []);
    }
    const ended = await endConversation("key-a");
    assert.equal(ended.json.extracted, 0);
    assert.equal(storeHash(), before);
    assert.ok((await list("key-a")).some((m) => m.memory.includes("Maren")));  // not forgotten
  });

  test("sensitive statements are not extracted unless asked; asked, they are stored", async () => {
    for (const content of ["I was diagnosed with diabetes last year.", "My card number is 4111 1111 1111 1111.",
      "I voted for the Green Party.", "My hobby is chess."]) {
      await say(alice, content);
    }
    const ended = await endConversation("key-a");
    assert.equal(ended.status, 200);
    assert.ok(ended.json.turns_left_out >= 6, JSON.stringify(ended.json));
    const infer = await call("key-a", "POST", "/v1/memories", {
      messages: [{ role: "user", content: "I am gay and I pray at the mosque every Friday." },
        { role: "assistant", content: "Thanks for telling me." }],
      infer: true,
    });
    assert.equal(infer.status, 200, infer.text);
    const all = JSON.stringify(await list("key-a"));
    for (const word of ["diabetes", "4111", "Green", "gay", "mosque"]) assert.ok(!all.includes(word), word);
    const asked = await say(alice, "Remember that I have diabetes.");
    assert.match(asked.text, /sensitive/);
    const stored = (await list("key-a")).find((m) => m.memory.includes("diabetes"));
    assert.ok(stored);
    assert.equal(stored.sensitive, true);
    assert.equal(stored.explicit_request, true);
  });

  test("the case table: no flagged statement is extracted (chat or infer); asked, each is stored", async () => {
    await endConversation("key-a");
    const before = JSON.stringify(await list("key-a"));
    for (const c of FLAGGED) await say(alice, c.text);
    const ended = await endConversation("key-a");
    assert.equal(ended.status, 200, ended.text);
    // Every statement and its answer left out; nothing reached extraction.
    assert.equal(ended.json.turns_left_out, 2 * FLAGGED.length, JSON.stringify(ended.json));
    assert.equal(ended.json.extracted, 0, JSON.stringify(ended.json));
    const infer = await call("key-a", "POST", "/v1/memories", {
      messages: FLAGGED.map((c) => ({ role: "user", content: c.text })), infer: true });
    assert.equal(infer.status, 200, infer.text);
    assert.deepEqual(infer.json.results, []);
    assert.equal(JSON.stringify(await list("key-a")), before);
    // Asked for (infer: false is "remember this"), each is stored, flagged sensitive.
    const asked = await call("key-b", "POST", "/v1/memories", {
      messages: FLAGGED.map((c) => ({ role: "user", content: c.text })), infer: false });
    assert.equal(asked.status, 200, asked.text);
    assert.deepEqual(asked.json.results.map((m) => m.memory).sort(), FLAGGED.map((c) => c.text).sort());
    for (const m of asked.json.results) {
      assert.equal(m.sensitive, true, m.memory);
      assert.equal(m.explicit_request, true, m.memory);
    }
    assert.equal((await call("key-b", "DELETE", "/v1/memories")).json.deleted, FLAGGED.length);
  });

  test("the REST API: add, get, update, history, search, delete in mem0's shapes", async () => {
    const add = await call("key-b", "POST", "/v1/memories", { messages: "Bob's dog is called Rex.", infer: false, user_id: "bob" });
    assert.equal(add.status, 200, add.text);
    assert.equal(add.json.results.length, 1);
    const m = add.json.results[0];
    assert.equal(m.event, "ADD");
    assert.equal(m.memory, "Bob's dog is called Rex.");
    assert.match(m.id, /^\d+$/);
    assert.equal((await call("key-b", "GET", `/v1/memories/${m.id}`)).json.memory, m.memory);
    const up = await call("key-b", "PUT", `/v1/memories/${m.id}/`, { text: "Bob's dog is called Max." });
    assert.equal(up.status, 200, up.text);
    assert.equal(up.json.memory, "Bob's dog is called Max.");
    const h = await call("key-b", "GET", `/v1/memories/${m.id}/history`);
    assert.deepEqual(h.json.map((e) => [e.event, e.old_memory, e.new_memory]), [
      ["ADD", null, "Bob's dog is called Rex."], ["UPDATE", "Bob's dog is called Rex.", "Bob's dog is called Max."]]);
    const s = await call("key-b", "POST", "/v1/memories/search", { query: "dog", top_k: 3 });
    assert.equal(s.json.results[0].id, m.id);
    assert.equal(typeof s.json.results[0].score, "number");
    const d = await call("key-b", "DELETE", `/v1/memories/${m.id}`);
    assert.equal(d.status, 200);
    assert.equal((await call("key-b", "DELETE", `/v1/memories/${m.id}`)).status, 404);
    await call("key-b", "POST", "/v1/memories", { messages: [{ role: "user", content: "x1" }, { role: "user", content: "x2" }], infer: false });
    const wipe = await call("key-b", "DELETE", "/v1/memories");
    assert.equal(wipe.json.deleted, 2);
    assert.deepEqual(await list("key-b"), []);
  });

  test("isolation: other users' ids, guessed ids, hostile text and sizes: clear errors, no leak", async () => {
    const mine = await list("key-a");
    assert.ok(mine.length > 0);
    const secret = mine[0];
    const bad = (r, status, param) => {
      assert.equal(r.status, status, r.text);
      assert.equal(typeof r.json?.error?.message, "string", r.text);
      if (param !== undefined) assert.equal(r.json.error.param, param, r.text);
      for (const m of mine) assert.ok(!r.text.includes(m.memory), `leak in ${r.text}`);
    };
    // Bob and the unnamed key C, with Alice's id: exactly "not found".
    for (const key of ["key-b", "key-c"]) {
      bad(await call(key, "GET", `/v1/memories/${secret.id}`), 404, "memory_id");
      bad(await call(key, "PUT", `/v1/memories/${secret.id}`, { text: "hacked" }), 404, "memory_id");
      bad(await call(key, "DELETE", `/v1/memories/${secret.id}`), 404, "memory_id");
      bad(await call(key, "GET", `/v1/memories/${secret.id}/history`), 404, "memory_id");
      // Naming Alice as the user is refused.
      bad(await call(key, "GET", "/v1/memories?user_id=alice"), 403, "user_id");
      bad(await call(key, "DELETE", "/v1/memories?user_id=alice"), 403, "user_id");
      bad(await call(key, "POST", "/v1/memories/search", { query: secret.memory, user_id: "alice" }), 403, "user_id");
      bad(await call(key, "POST", "/v1/memories/search", { query: "x", filters: { user_id: "alice" } }), 403, "user_id");
      bad(await call(key, "POST", "/v1/memories", { messages: "x", infer: false, user_id: "alice" }), 403, "user_id");
      const s = await call(key, "POST", "/v1/memories/search", { query: secret.memory, limit: 100 });
      assert.equal(s.status, 200);
      assert.ok(!s.json.results.some((m) => m.id === secret.id));
    }
    // Guessed and malformed ids.
    for (const id of ["1", "2", "9007199254740991", String(Number(secret.id) + 1)]) {
      bad(await call("key-b", "GET", `/v1/memories/${id}`), 404, "memory_id");
    }
    for (const id of ["abc", "-1", "0", "12345678901234567890", "1%3BDROP%20TABLE%20memories", "%27%20OR%201%3D1"]) {
      bad(await call("key-a", "GET", `/v1/memories/${id}`), 400, "memory_id");
    }
    // SQL metacharacters and FTS5 syntax are plain text, as queries and as memories.
    const hostile = ["'; DROP TABLE memories; --", "NEAR(sister Maren) OR \"x\" * ^summary:1", "a AND b NOT c",
      "\"unterminated", "*", "user_id = 'alice'", "%_\\", "😀 ünïcödé"];
    for (const q of hostile) {
      const s = await call("key-b", "POST", "/v1/memories/search", { query: q });
      assert.equal(s.status, 200, s.text);
      assert.deepEqual(s.json.results.filter((m) => m.user_id !== "bob"), []);
    }
    const stored = await call("key-b", "POST", "/v1/memories", { messages: hostile.map((content) => ({ role: "user", content })), infer: false });
    assert.equal(stored.status, 200, stored.text);
    assert.deepEqual((await list("key-b")).map((m) => m.memory).sort(), [...hostile].sort());
    // Bad bodies name the field.
    bad(await call("key-b", "POST", "/v1/memories", "{not json"), 400);
    bad(await call("key-b", "POST", "/v1/memories", []), 400);
    bad(await call("key-b", "POST", "/v1/memories", {}), 400, "messages");
    bad(await call("key-b", "POST", "/v1/memories", { messages: 5 }), 400, "messages");
    bad(await call("key-b", "POST", "/v1/memories", { messages: [{ role: "tool", content: "x" }] }), 400, "messages[0].role");
    bad(await call("key-b", "POST", "/v1/memories", { messages: "x", agent_id: "a" }), 400, "agent_id");
    bad(await call("key-b", "POST", "/v1/memories", { messages: "x", infer: "yes" }), 400, "infer");
    bad(await call("key-b", "POST", "/v1/memories/search", {}), 400, "query");
    bad(await call("key-b", "POST", "/v1/memories/search", { query: "x", limit: 0 }), 400, "limit");
    bad(await call("key-b", "POST", "/v1/memories/search", { query: "x", top_k: 1e6 }), 400, "top_k");
    bad(await call("key-b", "PUT", `/v1/memories/1`, { memory: "x" }), 400, "memory");
    bad(await call("key-b", "POST", "/v1/memories/end", { conversation: "../../etc" }), 400, "conversation");
    // Oversized: a memory longer than the store takes, a query longer than it searches, a body
    // over --max-body.
    bad(await call("key-b", "POST", "/v1/memories", { messages: "y".repeat(20000), infer: false }), 400, "messages");
    const some = (await list("key-b"))[0];
    bad(await call("key-b", "PUT", `/v1/memories/${some.id}`, { text: "z".repeat(20000) }), 400, "text");
    bad(await call("key-b", "POST", "/v1/memories/search", { query: "q".repeat(5000) }), 400, "query");
    bad(await call("key-b", "POST", "/v1/memories", { messages: "w".repeat(1100000), infer: false }), 413);
    // Without a key, nothing.
    const none = await fetch(`${server.base}/v1/memories`);
    assert.equal(none.status, 401);
    // Alice's memories are as they were; the server is alive.
    assert.deepEqual(await list("key-a"), mine);
    assert.equal((await fetch(`${server.base}/health`)).status, 200);
  });

  test("every error path of the memory routes: an OpenAI error object naming the field", async () => {
    const own = (await call("key-b", "POST", "/v1/memories", { messages: "Bob's own memory.", infer: false })).json.results[0].id;
    const gone = (await call("key-b", "POST", "/v1/memories", { messages: "Bob's gone memory.", infer: false })).json.results[0].id;
    assert.equal((await call("key-b", "DELETE", `/v1/memories/${gone}`)).status, 200);
    const user = (content, extra = {}) => ({ role: "user", content, ...extra });
    // [method, route, body, status, param ("" : none), code]
    const cases = [
      // POST /v1/memories
      ["POST", "/v1/memories", "{not json", 400, ""],
      ["POST", "/v1/memories", "", 400, ""],
      ["POST", "/v1/memories", [], 400, ""],
      ["POST", "/v1/memories", {}, 400, "messages"],
      ["POST", "/v1/memories", { messages: null }, 400, "messages"],
      ["POST", "/v1/memories", { messages: 5 }, 400, "messages"],
      ["POST", "/v1/memories", { messages: [] }, 400, "messages"],
      ["POST", "/v1/memories", { messages: "" }, 400, "messages"],
      ["POST", "/v1/memories", { messages: [{ role: "assistant", content: "only me" }] }, 400, "messages"],
      ["POST", "/v1/memories", { messages: Array(257).fill(user("x")) }, 400, "messages"],
      ["POST", "/v1/memories", { messages: ["x"] }, 400, "messages[0]"],
      ["POST", "/v1/memories", { messages: [user("x", { tool_calls: [] })] }, 400, "messages[0]"],
      ["POST", "/v1/memories", { messages: [{ content: "x" }] }, 400, "messages[0].role"],
      ["POST", "/v1/memories", { messages: [user("x"), { role: 3, content: "x" }] }, 400, "messages[1].role"],
      ["POST", "/v1/memories", { messages: [{ role: "tool", content: "x" }] }, 400, "messages[0].role"],
      ["POST", "/v1/memories", { messages: [{ role: "user" }] }, 400, "messages[0].content"],
      ["POST", "/v1/memories", { messages: [{ role: "user", content: ["x"] }] }, 400, "messages[0].content"],
      ["POST", "/v1/memories", { messages: "x", agent_id: "a" }, 400, "agent_id"],
      ["POST", "/v1/memories", { messages: "x", infer: "yes" }, 400, "infer"],
      ["POST", "/v1/memories", { messages: "x", metadata: 3 }, 400, "metadata"],
      ["POST", "/v1/memories", { messages: "x", user_id: 7 }, 400, "user_id"],
      ["POST", "/v1/memories", { messages: "x", infer: false, user_id: "alice" }, 403, "user_id", "user_mismatch"],
      ["POST", "/v1/memories", { messages: "y".repeat(20000), infer: false }, 400, "messages"],
      ["POST", "/v1/memories", { messages: "nul \u0000 byte", infer: false }, 400, "messages"],
      // GET / DELETE /v1/memories
      ["GET", "/v1/memories?user_id=alice", undefined, 403, "user_id", "user_mismatch"],
      ["DELETE", "/v1/memories?user_id=alice", undefined, 403, "user_id", "user_mismatch"],
      // POST /v1/memories/search
      ["POST", "/v1/memories/search", "[", 400, ""],
      ["POST", "/v1/memories/search", "7", 400, ""],
      ["POST", "/v1/memories/search", {}, 400, "query"],
      ["POST", "/v1/memories/search", { query: 5 }, 400, "query"],
      ["POST", "/v1/memories/search", { query: "" }, 400, "query"],
      ["POST", "/v1/memories/search", { query: "q".repeat(5000) }, 400, "query"],
      ["POST", "/v1/memories/search", { query: "nul \u0000 byte" }, 400, "query"],
      ["POST", "/v1/memories/search", { query: "x", limit: 0 }, 400, "limit"],
      ["POST", "/v1/memories/search", { query: "x", limit: 101 }, 400, "limit"],
      ["POST", "/v1/memories/search", { query: "x", limit: 2.5 }, 400, "limit"],
      ["POST", "/v1/memories/search", { query: "x", limit: "5" }, 400, "limit"],
      ["POST", "/v1/memories/search", { query: "x", top_k: 1e6 }, 400, "top_k"],
      ["POST", "/v1/memories/search", { query: "x", top_k: -1 }, 400, "top_k"],
      ["POST", "/v1/memories/search", "{\"query\": \"x\", \"top_k\": 18446744073709551615}", 400, "top_k"],
      ["POST", "/v1/memories/search", { query: "x", rerank: true }, 400, "rerank"],
      ["POST", "/v1/memories/search", { query: "x", filters: [] }, 400, "filters"],
      ["POST", "/v1/memories/search", { query: "x", filters: { agent_id: "a" } }, 400, "filters"],
      ["POST", "/v1/memories/search", { query: "x", filters: { user_id: 1 } }, 400, "filters.user_id"],
      ["POST", "/v1/memories/search", { query: "x", user_id: "bob", filters: { user_id: "carol" } }, 400, "filters.user_id"],
      ["POST", "/v1/memories/search", { query: "x", user_id: "alice" }, 403, "user_id", "user_mismatch"],
      ["POST", "/v1/memories/search", { query: "x", filters: { user_id: "alice" } }, 403, "user_id", "user_mismatch"],
      // GET / PUT / DELETE /v1/memories/{id}, GET /v1/memories/{id}/history
      ...["abc", "0", "-1", "1.5", "12345678901234567", "%20"].flatMap((id) => [
        ["GET", `/v1/memories/${id}`, undefined, 400, "memory_id"],
        ["PUT", `/v1/memories/${id}`, { text: "x" }, 400, "memory_id"],
        ["DELETE", `/v1/memories/${id}`, undefined, 400, "memory_id"],
        ["GET", `/v1/memories/${id}/history`, undefined, 400, "memory_id"],
      ]),
      ["GET", `/v1/memories/${gone}`, undefined, 404, "memory_id", "memory_not_found"],
      ["PUT", `/v1/memories/${gone}`, { text: "x" }, 404, "memory_id", "memory_not_found"],
      ["DELETE", `/v1/memories/${gone}`, undefined, 404, "memory_id", "memory_not_found"],
      ["GET", "/v1/memories/9999999999999999/history", undefined, 404, "memory_id", "memory_not_found"],
      ["PUT", `/v1/memories/${own}`, "{", 400, ""],
      ["PUT", `/v1/memories/${own}`, [], 400, ""],
      ["PUT", `/v1/memories/${own}`, {}, 400, "text"],
      ["PUT", `/v1/memories/${own}`, { text: null }, 400, "text"],
      ["PUT", `/v1/memories/${own}`, { text: "" }, 400, "text"],
      ["PUT", `/v1/memories/${own}`, { text: 5 }, 400, "text"],
      ["PUT", `/v1/memories/${own}`, { memory: "x" }, 400, "memory"],
      ["PUT", `/v1/memories/${own}`, { text: "x", metadata: {}, extra: 1 }, 400, "extra"],
      ["PUT", `/v1/memories/${own}`, { text: "x", user_id: "alice" }, 403, "user_id", "user_mismatch"],
      ["PUT", `/v1/memories/${own}`, { text: "z".repeat(20000) }, 400, "text"],
      ["PUT", `/v1/memories/${own}`, { text: "nul \u0000 byte" }, 400, "text"],
      ["PUT", `/v1/memories/${own}`, { text: "   " }, 400, "text"],
      // POST /v1/memories/end
      ["POST", "/v1/memories/end", "{", 400, ""],
      ["POST", "/v1/memories/end", "[]", 400, ""],
      ["POST", "/v1/memories/end", { conversation: 5 }, 400, "conversation"],
      ["POST", "/v1/memories/end", { conversation: "../../etc" }, 400, "conversation"],
      ["POST", "/v1/memories/end", { conversation: "x".repeat(65) }, 400, "conversation"],
      ["POST", "/v1/memories/end", { user_id: "alice" }, 400, "user_id"],
      // No such route or method under /v1/memories.
      ["PATCH", `/v1/memories/${own}`, { text: "x" }, 404, "", "unknown_url"],
      ["POST", `/v1/memories/${own}`, { text: "x" }, 404, "", "unknown_url"],
      ["DELETE", `/v1/memories/${own}/history`, undefined, 404, "", "unknown_url"],
      ["GET", "/v1/memories/search", undefined, 400, "memory_id"],
    ];
    for (const [method, route, body, status, param, code] of cases) {
      const r = await call("key-b", method, route, body);
      const what = `${method} ${route} ${typeof body === "string" ? body : JSON.stringify(body)?.slice(0, 80)}`;
      assert.equal(r.status, status, `${what}: ${r.text}`);
      assert.equal(typeof r.json?.error?.message, "string", `${what}: ${r.text}`);
      assert.equal(typeof r.json.error.type, "string", `${what}: ${r.text}`);
      assert.equal(r.json.error.param ?? "", param, `${what}: ${r.text}`);
      if (code) assert.equal(r.json.error.code, code, `${what}: ${r.text}`);
      if (param) assert.ok(r.json.error.message.length > 0, what);
    }
    // Unauthenticated: a missing or unknown key, on every route.
    for (const [method, route] of [["GET", "/v1/memories"], ["POST", "/v1/memories"], ["DELETE", "/v1/memories"],
      ["POST", "/v1/memories/search"], ["POST", "/v1/memories/end"], ["GET", `/v1/memories/${own}`],
      ["PUT", `/v1/memories/${own}`], ["DELETE", `/v1/memories/${own}`], ["GET", `/v1/memories/${own}/history`]]) {
      for (const headers of [{}, { Authorization: "Bearer key-z" }]) {
        const r = await fetch(`${server.base}${route}`, { method, headers, body: method === "GET" || method === "DELETE" ? undefined : "{}" });
        assert.equal(r.status, 401, `${method} ${route}`);
        assert.equal((await r.json()).error.type, "authentication_error");
      }
    }
    // The memory is as it was and the server is alive.
    assert.equal((await call("key-b", "GET", `/v1/memories/${own}`)).json.memory, "Bob's own memory.");
    assert.equal((await call("key-b", "DELETE", `/v1/memories/${own}`)).status, 200);
    assert.equal((await fetch(`${server.base}/health`)).status, 200);
  });
});

describe("a server without agent memory", () => {
  test("the memory routes say how to turn it on", async () => {
    const server = await startServer(["-q"]);
    try {
      const r = await fetch(`${server.base}/v1/memories`);
      assert.equal(r.status, 404);
      const j = await r.json();
      assert.equal(j.error.code, "memory_disabled");
      assert.match(j.error.message, /--memory-db/);
    } finally {
      assert.equal((await server.stop()).code, 0);
    }
  });
});

describe("engram serve: memory flags", () => {
  test("a store or key user that cannot be used is one clear line, no crash, no password", () => {
    const dir = tempDir("serve-flags");
    const cases = [
      [["--memory-db", path.join(dir, "m.db"), "--memory-pg", "postgresql://x/y"], /excludes/],
      [["--memory-pg", "postgresql://me:hunter2@127.0.0.1:1/db"], /cannot connect to the memory store/],
      [["--memory-pg", "mysql://x"], /neither sqlite:PATH/],
      [["--memory-db", path.join(dir, "no/such/dir/m.db")], /no\/such\/dir\/m\.db/],
      [["--memory-db", path.join(dir, "m.db"), "--memory-idle", "0"], /--memory-idle must be >= 1/],
      [["--memory-db", path.join(dir, "m.db"), "--memory-rerank", "sometimes"], /--memory-rerank/],
      [["--memory-db", path.join(dir, "m.db"), "--api-key", "k:a\tb"], /user contains a control character/],
      [["--memory-db", path.join(dir, "m.db"), "--api-key", `k:${"u".repeat(300)}`], /user is 300 bytes/],
      [["--memory-db", path.join(dir, "m.db"), "--api-key", "k:"], /empty key or user/],
    ];
    for (const [args, message] of cases) {
      const r = spawnSync(BIN, ["serve", "--port", "0", "-t", "1", ...args], { encoding: "utf8", timeout: 60000 });
      assert.equal(r.status, 1, `${args}: ${r.stderr}`);
      assert.match(r.stderr, /engram: error: /, r.stderr);
      assert.match(r.stderr, message, r.stderr);
      assert.doesNotMatch(r.stderr, /hunter2/);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

const chat = (args, lines) =>
  spawnSync(BIN, ["chat", "-t", "1", "-n", "16", "--temp", "0", ...args], { input: lines.join("\n") + "\n", encoding: "utf8" });

for (const backend of BACKENDS) describe(`engram chat with agent memory (${backend.name})`, () => {
  let dir, store;
  const memory = (verb, ...args) =>
    spawnSync(BIN, ["memory", verb, ...store.memory, ...args], { encoding: "utf8" });

  before(() => {
    dir = tempDir("chat-memory");
    store = backend.open(dir, "chat");
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test("remember, recall in a later run, forget, temporary", () => {
    let r = chat([...store.chat, "--user", "carol"], ["Remember that my cat is called Pixel.", "My hobby is chess."]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /remember: User's cat is called Pixel\./);
    assert.match(r.stderr, /\[memory: \d+ extracted/);  // reflection ran on exit
    const listed = memory("list", "--user", "carol", "--json");
    const pixel = listed.stdout.trim().split("\n").map((l) => JSON.parse(l)).find((m) => m.summary.includes("Pixel"));
    assert.ok(pixel, listed.stdout);
    // A later conversation's prompt holds it (-v prints the memories shown).
    r = chat([...store.chat, "--user", "carol", "-v"], ["What is my cat called?"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`\\[memory \\[\\d\\] ${pixel.id}: User's cat is called Pixel\\.\\]`));
    assert.doesNotMatch(r.stdout, /\[\d+\]/);
    // Another user's chat never sees it.
    r = chat([...store.chat, "--user", "dave", "-v"], ["What is my cat called?"]);
    assert.doesNotMatch(r.stderr, /Pixel/);
    // Forgotten: never in a prompt, the list, search or export again.
    r = chat([...store.chat, "--user", "carol"], ["Forget my cat.", "/end", "What is my cat called?"]);
    assert.match(r.stdout, /forgot \d+ memor/);  // the model may have extracted more about the cat
    r = chat([...store.chat, "--user", "carol", "-v"], ["What is my cat called?", "/memories"]);
    assert.doesNotMatch(r.stderr + r.stdout, /Pixel/);
    assert.doesNotMatch(memory("list", "--user", "carol").stdout, /Pixel/);
    assert.doesNotMatch(memory("search", "--user", "carol", "Pixel cat").stdout, /Pixel/);
    const exported = path.join(dir, "export.jsonl");
    assert.equal(memory("export", "--user", "carol", "-o", exported).status, 0);
    assert.doesNotMatch(fs.readFileSync(exported, "utf8"), /Pixel/);
    // Temporary: the store is byte-identical, and a store that does not exist is not made.
    const before = sha256(store.contents());
    r = chat([...store.chat, "--user", "carol", "--temporary"],
      ["Remember that my dog is Rex.", "My brother is Tomas.", "Forget my hobby.", "/end"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /temporary chat/);
    assert.equal(sha256(store.contents()), before);
    if (backend.name === "SQLite") {
      const nowhere = path.join(dir, "never.db");
      r = chat(["--memory-db", nowhere, "--user", "carol", "--temporary"], ["Remember that I like tea."]);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(!fs.existsSync(nowhere));
    }
  });

  test("sensitive statements are not extracted unless asked", () => {
    const r = chat([...store.chat, "--user", "erin"],
      ["I was diagnosed with diabetes last year.", "My passport number is X1234567.", "I'm a Catholic."]);
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(memory("list", "--user", "erin").stdout, /diabetes|X1234567|Catholic/);
    chat([...store.chat, "--user", "erin"], ["Remember that I'm a Catholic."]);
    assert.match(memory("list", "--user", "erin").stdout, /Catholic/);
  });

  test("the case table through chat: no flagged statement is extracted", () => {
    // One conversation (/reset only clears the model's context, which holds a few turns).
    const r = chat([...store.chat, "--user", "frank"], FLAGGED.flatMap((c) => [c.text, "/reset"]));
    assert.equal(r.status, 0, r.stderr);
    // Every statement and its answer left out, nothing extracted.
    assert.match(r.stderr, new RegExp(`\\[memory: 0 extracted, 0 added, 0 merged, .*, ${2 * FLAGGED.length} turns not shown`), r.stderr);
    assert.equal(memory("list", "--user", "frank").stdout, "");
  });

  test("isolation through chat: hostile user names and texts see and change nothing of another's", () => {
    assert.equal(memory("add", "--user", "carol", "Carol's hobby is chess.").status, 0);
    const before = memory("list", "--user", "carol", "--json").stdout;
    assert.ok(before.includes("chess"));
    for (const user of ["carol' OR '1'='1", "carol%", "CAROL", " carol", "*", "x".repeat(300)]) {
      const r = chat([...store.chat, "--user", user, "-v"],
        ["What do you remember about me?", "Forget chess.", "NEAR(chess hobby) OR \"x\" * ^summary:1"]);
      if (r.status !== 0) {
        assert.match(r.stderr, /user is \d+ bytes/, r.stderr);  // refused, naming the field
        continue;
      }
      assert.match(r.stdout, /I don't remember anything about you yet/);
      assert.match(r.stdout, /nothing matching that to forget/);
      assert.doesNotMatch(r.stderr, /\[memory \[\d/);  // no memory reached the prompt
    }
    assert.equal(memory("list", "--user", "carol", "--json").stdout, before);
  });
});

describe("engram chat: memory flags", () => {
  test("a user is required, --session cannot be combined, one store", () => {
    const dir = tempDir("chat-flags");
    const db = path.join(dir, "memory.db");
    let r = chat(["--memory-db", db], ["hi"]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /--user is required/);
    r = chat(["--memory-db", db, "--user", "x", "--session", path.join(dir, "s.session")], ["hi"]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /--session cannot be used/);
    r = chat(["--memory-db", db, "--pg", "postgresql://nowhere/x", "--user", "x"], ["hi"]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /excludes/);
    // A store that cannot be opened, a user name the store refuses: one clear line, no crash.
    const refused = [
      [["--pg", "postgresql://me:hunter2@127.0.0.1:1/db", "--user", "x"], /cannot connect to the memory store/],
      [["--pg", "mysql://x", "--user", "x"], /neither sqlite:PATH/],
      [["--memory-db", path.join(dir, "no/such/dir/m.db"), "--user", "x"], /no\/such\/dir\/m\.db/],
      [["--memory-db", db, "--user", "a\tb"], /user contains a control character/],
      [["--memory-db", db, "--user", ""], /user is empty|--user is required/],
      [["--memory-db", db, "--user", "u".repeat(300)], /user is 300 bytes/],
      [["--memory-db", db, "--user", "x", "--memory-rerank", "sometimes"], /--memory-rerank/],
    ];
    for (const [args, message] of refused) {
      r = chat(args, ["hi"]);
      assert.equal(r.status, 1, `${args}: ${r.stderr}`);
      assert.match(r.stderr, /^engram: error: /, r.stderr);
      assert.match(r.stderr, message, r.stderr);
      assert.doesNotMatch(r.stderr, /hunter2/);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
