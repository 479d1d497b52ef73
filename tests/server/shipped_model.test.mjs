// `engram serve` with the shipped chat model and its own template (no flags): what a user who
// clones the repository and runs `engram serve` gets.
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import OpenAI from "openai";

import { ROOT, chatRun, startServer, tempDir } from "./server_harness.mjs";

const MODEL = path.join(ROOT, "models/engram-tiny-chat.gguf");
let server;
let client;

before(async () => {
  server = await startServer(["--sessions-dir", tempDir("shipped"), "--parallel", "2"]);
  client = new OpenAI({ baseURL: server.url, apiKey: "none", maxRetries: 0 });
});

after(async () => {
  const stopped = await server?.stop();
  assert.equal(stopped?.code, 0, server?.log);
});

test("the default model is the shipped chat model", async () => {
  const list = await client.models.list();
  assert.deepEqual(list.data.map((m) => m.id), ["engram-tiny-chat"]);
});

test("a conversation over three requests equals one `engram chat` run", async () => {
  const turns = ["Hi! My sister is called Alice.", "I work as a nurse in Leeds.", "What is my sister's name?"];
  const expected = chatRun(["-m", MODEL, "-n", "24", "--temp", "0"], turns)
    .filter((m) => m.role === "assistant").map((m) => m.content);
  const got = [];
  for (const content of turns) {
    const r = await client.chat.completions.create({
      model: "engram-tiny-chat", max_tokens: 24, temperature: 0, conversation: "shipped",
      messages: [{ role: "user", content }],
    });
    got.push(r.choices[0].message.content);
  }
  assert.deepEqual(got, expected);
});

test("streamed text equals the whole reply, and no chunk splits a character", async () => {
  const messages = [{ role: "user", content: "Café, naïve, Zürich, 東京 — tell me about them." }];
  for (const seed of [1, 2, 3, 4]) {
    const whole = await client.chat.completions.create({
      model: "engram-tiny-chat", messages, max_tokens: 48, temperature: 1.2, seed,
    });
    const stream = await client.chat.completions.create({
      model: "engram-tiny-chat", messages, max_tokens: 48, temperature: 1.2, seed, stream: true,
    });
    let text = "";
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? "";
    // A character split across two chunks would reach the client as two U+FFFD, one in each
    // chunk's JSON, and the joined text would differ from the whole reply.
    assert.equal(text, whole.choices[0].message.content);
  }
});
