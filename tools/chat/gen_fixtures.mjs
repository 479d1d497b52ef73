// Regenerates tests/fixtures/chat/: copies the packaged chat templates next to the hand-placed
// ones and writes expected.json with @huggingface/jinja's render of every case (cases.mjs).
// The C++ test (tests/test_chat_template_conformance.cpp) compares against it without node.
//
//   node tools/chat/gen_fixtures.mjs
//
// The builtin-*.jinja files are engram's built-in templates as printed by
// `engram chat-template --print-builtin NAME`; a C++ test checks they are still identical.
import fs from "node:fs";
import path from "node:path";
import { FIXTURES, TEMPLATES, TEMPLATE_SET, allCases, importPackagedTemplates, jinjaRender } from "./cases.mjs";

importPackagedTemplates();
const out = [];
let errors = 0;
for (const c of allCases()) {
  const source = fs.readFileSync(path.join(TEMPLATES, TEMPLATE_SET[c.template].file), "utf8");
  const r = await jinjaRender(source, c.vars);
  if (r.error !== undefined) ++errors;
  out.push({ id: c.id, template: TEMPLATE_SET[c.template].file, vars: c.vars, ...("error" in r ? { error: r.error } : { expected: r.output }) });
}
fs.writeFileSync(path.join(FIXTURES, "expected.json"), JSON.stringify(out, null, 1) + "\n");
console.log(`wrote ${out.length} cases (${errors} rejected by the template) to ${path.join(FIXTURES, "expected.json")}`);
