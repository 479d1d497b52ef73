// Runs the real `engram` binary (ENGRAM_CLI_PATH) for tests of the command line: exit code,
// stdout and stderr, optionally with text on stdin.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace engram::testing_cli {

struct CliResult {
  int status = -1;  // exit code (-1 if killed by a signal)
  std::string out;  // stdout
  std::string err;  // stderr
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline std::string temp_path(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) /
          ("cli_" + std::to_string(getpid()) + "_" + name))
      .string();
}

// A path from temp_path() whose file (or directory) is removed when the object goes out of
// scope, also when a failed ASSERT leaves the test early.
class TempFile {
 public:
  explicit TempFile(const std::string& name) : path_(temp_path(name)) {}
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// args go through the shell: callers quote what needs quoting. stdin_text, when given, is
// written to a file and redirected to the command's standard input.
inline CliResult run_cli(const std::string& args, const std::string* stdin_text = nullptr) {
  const std::string out_path = temp_path("stdout.txt");
  const std::string err_path = temp_path("stderr.txt");
  const std::string in_path = temp_path("stdin.txt");
  std::string cmd = std::string("'") + ENGRAM_CLI_PATH + "' " + args + " >'" + out_path + "' 2>'" +
                    err_path + "'";
  if (stdin_text) {
    std::ofstream(in_path, std::ios::binary) << *stdin_text;
    cmd += " <'" + in_path + "'";
  } else {
    cmd += " </dev/null";
  }
  const int rc = std::system(cmd.c_str());
  CliResult r;
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  std::filesystem::remove(out_path);
  std::filesystem::remove(err_path);
  std::filesystem::remove(in_path);
  return r;
}

}  // namespace engram::testing_cli
