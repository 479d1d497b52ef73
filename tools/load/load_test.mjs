// A bounded load test of `engram serve`: N clients stream chat completions back to back for a
// fixed time through the official `openai` client. Prints one JSON object: requests, failures,
// latency percentiles, tokens/s, and the server's RSS after the first minute (or the first
// quarter of a shorter run) and at the end.
//   node tools/load/load_test.mjs --url http://127.0.0.1:8080/v1 --pid PID [--clients 32]
//        [--seconds 600] [--max-tokens 48] [--key KEY]
import fs from "node:fs";
import OpenAI from "openai";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
    return acc;
  }, []));
const url = args.url;
const pid = Number(args.pid);
const clients = Number(args.clients ?? 32);
const seconds = Number(args.seconds ?? 600);
const maxTokens = Number(args["max-tokens"] ?? 48);
if (!url || !pid) {
  console.error("usage: load_test.mjs --url URL --pid SERVER_PID [--clients N] [--seconds S]");
  process.exit(2);
}

function rssMiB() {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(status.match(/VmRSS:\s+(\d+)/)[1]) / 1024;
}

const words = "the cat sat on a mat and then it went home to see the old dog again".split(" ");
function prompt(rng) {
  let s = "";
  for (let i = 0; i < 8 + (rng() % 24); i++) s += words[rng() % words.length] + " ";
  return s.trim();
}

const latencies = [];
const firstToken = [];
let requests = 0, failures = 0, tokens = 0;
const errors = {};
const t0 = Date.now();
const end = t0 + seconds * 1000;
const rssMark = Math.min(60, seconds / 4) * 1000;
let rssEarly = null;
const sampler = setInterval(() => {
  if (rssEarly === null && Date.now() - t0 >= rssMark) rssEarly = rssMiB();
}, 250);

async function client(id) {
  const c = new OpenAI({ baseURL: url, apiKey: args.key ?? "none", maxRetries: 0, timeout: 600000 });
  let state = id * 7919 + 1;
  const rng = () => (state = (state * 1103515245 + 12345) % 2147483648);
  while (Date.now() < end) {
    const start = Date.now();
    let first = null;
    try {
      const stream = await c.chat.completions.create({
        model: "any", stream: true, stream_options: { include_usage: true },
        max_tokens: maxTokens, temperature: 0.8, seed: rng(),
        messages: [{ role: "user", content: prompt(rng) }],
      });
      let usage = null;
      for await (const chunk of stream) {
        if (first === null && chunk.choices[0]?.delta?.content) first = Date.now() - start;
        if (chunk.usage) usage = chunk.usage;
      }
      if (!usage) throw new Error("no usage chunk");
      tokens += usage.completion_tokens;
      latencies.push(Date.now() - start);
      if (first !== null) firstToken.push(first);
      requests++;
    } catch (e) {
      failures++;
      const key = String(e.status ?? e.message).slice(0, 80);
      errors[key] = (errors[key] ?? 0) + 1;
    }
  }
}

const pct = (xs, p) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
clearInterval(sampler);
const elapsed = (Date.now() - t0) / 1000;
const rssEnd = rssMiB();
const summary = {
  clients, seconds: elapsed, requests, failures, errors,
  latency_ms_p50: pct(latencies, 50), latency_ms_p99: pct(latencies, 99),
  first_token_ms_p50: pct(firstToken, 50), first_token_ms_p99: pct(firstToken, 99),
  completion_tokens: tokens, tokens_per_s: tokens / elapsed,
  rss_mib_early: rssEarly, rss_mib_end: rssEnd,
  rss_growth: rssEarly ? rssEnd / rssEarly - 1 : null,
};
console.log(JSON.stringify(summary));
process.exit(failures === 0 ? 0 : 1);
