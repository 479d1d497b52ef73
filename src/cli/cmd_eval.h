// `engram eval`: memory evaluations (passkey so far). Registered by main() with
// add_eval_command(app).
#pragma once

namespace CLI {
class App;
}

namespace engram::cli {

void add_eval_command(CLI::App& app);

}  // namespace engram::cli
