// Renders every conformance case live with @huggingface/jinja and with the engram binary
// (`engram chat-template --template-file F --vars -`) and reports any difference.
//
//   node tools/chat/compare.mjs [path/to/engram]     (default: build/engram)
//
// Exit status 1 on any mismatch; each one is printed with both renders as JSON strings.
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { ROOT, TEMPLATES, TEMPLATE_SET, allCases, jinjaRender, loadTemplateTokens } from "./cases.mjs";

const engram = process.argv[2] ?? path.join(ROOT, "build/engram");
loadTemplateTokens();
let bad = 0;
const cases = allCases();
for (const c of cases) {
  const file = path.join(TEMPLATES, TEMPLATE_SET[c.template].file);
  const ref = await jinjaRender(fs.readFileSync(file, "utf8"), c.vars);
  const run = spawnSync(engram, ["chat-template", "--template-file", file, "--vars", "-"], {
    input: JSON.stringify(c.vars),
    encoding: "utf8",
  });
  if (run.error) throw run.error;
  const ours = run.status === 0 ? { output: run.stdout } : { error: run.stderr.trim() };
  const same = "error" in ref ? "error" in ours : ours.output === ref.output;
  if (!same) {
    ++bad;
    console.log(`MISMATCH ${c.id}`);
    console.log(`  jinja : ${JSON.stringify(ref)}`);
    console.log(`  engram: ${JSON.stringify(ours)}`);
  }
}
console.log(`${cases.length - bad}/${cases.length} cases identical`);
process.exit(bad ? 1 : 0);
