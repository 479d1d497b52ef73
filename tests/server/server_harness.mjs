// Starts and stops `engram serve` on loopback for the node test suites, and runs `engram chat`
// for comparisons. The binary and the models come from the environment scripts/test_server.sh
// sets (ENGRAM_BIN, ENGRAM_ROOT).
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export const ROOT = process.env.ENGRAM_ROOT ?? path.resolve(import.meta.dirname, "../..");
export const BIN = process.env.ENGRAM_BIN ?? path.join(ROOT, "build/engram");
export const GOLDEN = path.join(ROOT, "tests/fixtures/golden/llama_f32.gguf");

export function tempDir(name) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `engram-${name}-`));
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// A running server: `url` is its /v1 base, `stop()` ends it with SIGTERM (or `kill()` with
// SIGKILL), `log` holds what it printed.
export async function startServer(args, { timeoutMs = 30000 } = {}) {
  const port = await freePort();
  const child = spawn(BIN, ["serve", "--port", String(port), "-t", "1", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const server = {
    child,
    port,
    base: `http://127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}/v1`,
    log: "",
    exit: new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal }))),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return this.exit;
      child.kill("SIGTERM");
      return this.exit;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      return this.exit;
    },
  };
  child.stderr.on("data", (d) => (server.log += d.toString()));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`engram serve exited: ${server.log}`);
    try {
      const r = await fetch(`${server.base}/health`);
      if (r.status === 200) return server;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGKILL");
  throw new Error(`engram serve did not become ready in ${timeoutMs} ms: ${server.log}`);
}

// Runs `engram chat` over the given user lines and returns the conversation it saved.
export function chatRun(args, lines) {
  const dir = tempDir("chat");
  const save = path.join(dir, "conversation.json");
  const input = lines.join("\n") + `\n/save ${save}\n`;
  const r = spawnSync(BIN, ["chat", "-t", "1", ...args], { input, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`engram chat failed (${r.status}): ${r.stderr}`);
  const saved = JSON.parse(fs.readFileSync(save, "utf8"));
  fs.rmSync(dir, { recursive: true, force: true });
  return saved.messages;
}

// POST with a raw body; returns { status, json, text }.
export async function post(server, route, body, headers = {}) {
  const r = await fetch(`${server.base}${route}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON (an SSE stream)
  }
  return { status: r.status, json, text, headers: r.headers };
}

// The `data:` payloads of an SSE body, in order.
export function sseData(text) {
  return text
    .split("\n\n")
    .filter((block) => block.startsWith("data: "))
    .map((block) => block.slice("data: ".length));
}
