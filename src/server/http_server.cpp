// The HTTP layer of `engram serve` (cpp-httplib): authentication, routes, request limits, SSE.
// Requests become tasks for the scheduler; nothing here knows how a conversation is rendered.
#include <fmt/format.h>
#include <httplib.h>
#include <pthread.h>
#include <signal.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <random>

#include "engram/chat_template.h"
#include "engram/error.h"
#include "engram/grammar.h"
#include "engram/model.h"
#include "engram/server.h"
#include "engram/text_encoder.h"
#include "engram/thread_pool.h"
#include "engram/tokenizer.h"
#include "server/api_error.h"
#include "server/api_request.h"
#include "server/api_response.h"
#include "server/memory_api.h"
#include "server/metrics.h"
#include "server/scheduler.h"

namespace engram {

namespace {

using namespace server;
using Clock = std::chrono::steady_clock;

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status();
  res.set_content(error_body(e), "application/json");
}

std::string sse(const std::string& data) {
  return "data: " + data + "\n\n";
}

// Everything the handlers share. The model and the scheduler appear once loading is done.
struct Service {
  const ServerOptions& o;
  RequestLimits limits;
  Metrics metrics;
  std::atomic<bool> ready{false};
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<TextEncoder> encoder;  // --embed-model (null: the model embeds)
  std::unique_ptr<ChatTemplate> tmpl;
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<Scheduler> scheduler;
  std::shared_ptr<GrammarVocab> grammar_vocab;              // the vocabulary's trie and token masks
  std::unique_ptr<agent_memory::MemoryStore> memory_store;  // agent memory (null: off)
  std::unique_ptr<MemoryApi> memory_api;
  std::string model_id;
  int64_t created = 0;

  explicit Service(const ServerOptions& opts) : o(opts) { limits.max_tokens = o.max_tokens; }

  // The caller's owner id; the pre-routing handler has checked the key already.
  std::string owner(const httplib::Request& req) const {
    if (o.api_keys.empty()) return owner_of_key("");
    std::string auth = req.get_header_value("Authorization");
    return owner_of_key(auth.substr(std::strlen("Bearer ")));
  }

  // Whose agent memory the caller's key uses: the user named for it (--api-key KEY:USER), else
  // a name made from the key's hash; "anonymous" on a server without keys.
  std::string memory_user(const httplib::Request& req) const {
    if (o.api_keys.empty()) return "anonymous";
    const std::string key = req.get_header_value("Authorization").substr(std::strlen("Bearer "));
    auto it = o.key_users.find(key);
    return it != o.key_users.end() ? it->second : owner_of_key(key);
  }

  bool authorized(const httplib::Request& req) const {
    if (o.api_keys.empty()) return true;
    const std::string auth = req.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) != 0) return false;
    const std::string key = auth.substr(7);
    for (const std::string& k : o.api_keys) {
      if (k.size() == key.size() && std::equal(k.begin(), k.end(), key.begin())) return true;
    }
    return false;
  }

  std::shared_ptr<Task> make_task(const httplib::Request& req, GenerationRequest r) {
    const std::string header = req.get_header_value("X-Engram-Conversation");
    if (!header.empty()) {
      check_conversation_id(header, "X-Engram-Conversation");
      if (!r.conversation.empty() && r.conversation != header) {
        throw bad_field("conversation",
                        "the conversation in the body and in X-Engram-Conversation differ");
      }
      r.conversation = header;
    }
    if (!r.conversation.empty() && r.kind != GenerationRequest::Kind::Chat) {
      throw bad_field("conversation", "named conversations are for /v1/chat/completions");
    }
    if (!r.seeded) r.sampling.seed = std::random_device{}();
    auto task = std::make_shared<Task>();
    if (r.kind == GenerationRequest::Kind::Chat && r.conversation.empty()) {
      // The slot that already holds most of this prompt is chosen for it.
      try {
        task->prompt_tokens = tok->encode(tmpl->render(r.messages, true), tok->add_bos(), true);
      } catch (const Error& e) {
        throw bad_field("messages", e.what());
      }
    }
    if (r.response_format != "text") {
      // Compiled here, in the request's own thread (a large schema must not stall the slots).
      std::shared_ptr<const Grammar> g;
      try {
        g = r.response_format == "json_object" ? Grammar::any_json_object()
                                               : Grammar::from_json_schema(r.json_schema);
      } catch (const Error& e) {
        throw bad_field(r.response_format == "json_object" ? "response_format"
                                                           : "response_format.json_schema.schema",
                        e.what());
      }
      task->grammar = std::make_shared<GrammarMatcher>(std::move(g), grammar_vocab);
    }
    task->request = std::move(r);
    task->owner = owner(req);
    if (memory_api) task->memory_user = memory_user(req);
    task->deadline = Clock::now() + std::chrono::seconds(o.timeout_seconds);
    return task;
  }

  void generate(const httplib::Request& req, httplib::Response& res, bool chat) {
    GenerationRequest r =
        chat ? parse_chat_request(req.body, limits) : parse_completion_request(req.body, limits);
    std::shared_ptr<Task> task = make_task(req, std::move(r));
    const GenerationRequest& q = task->request;
    ResponseHead head{new_id(chat ? "chatcmpl-" : "cmpl-"), model_id,
                      static_cast<int64_t>(std::time(nullptr)), chat, q.conversation};
    const std::string echo = !chat && q.echo ? q.prompt : "";
    scheduler->submit(task);

    TaskEvent first;
    wait(*task, first);
    if (first.kind == TaskEvent::Kind::Failed) {
      send_error(res, *first.error);
      return;
    }
    if (!task->memory_user.empty()) {
      // Which memories the prompt showed (engram extension; the reply's [i] are stripped).
      std::string ids;
      for (int64_t id : task->memories_shown) ids += (ids.empty() ? "" : ",") + std::to_string(id);
      res.set_header("X-Engram-Memories", ids);
    }
    if (!q.stream) {
      std::string text = echo;
      TaskEvent e = std::move(first);
      while (e.kind == TaskEvent::Kind::Delta) {
        text += e.text;
        wait(*task, e);
      }
      if (e.kind == TaskEvent::Kind::Failed) {
        send_error(res, *e.error);
      } else if (task->timed_out) {
        send_error(res,
                   ApiError(504, "server_error",
                            fmt::format("the request took longer than {} s", o.timeout_seconds), "",
                            "timeout"));
      } else {
        res.set_content(completion_body(head, text, e.finish, e.usage), "application/json");
      }
      return;
    }
    stream(res, task, std::move(head), std::move(first), echo);
  }

  // The next event of a task the HTTP thread waits on (the scheduler always ends a task).
  static void wait(Task& task, TaskEvent& e) {
    while (!task.pop(e, std::chrono::milliseconds(200))) {
    }
  }

  struct StreamState {
    std::shared_ptr<Task> task;
    ResponseHead head;
    std::optional<TaskEvent> next;
    std::string echo;
    bool first = true;
    bool done = false;
  };

  void stream(httplib::Response& res, std::shared_ptr<Task> task, ResponseHead head,
              TaskEvent first, std::string echo) {
    auto st = std::make_shared<StreamState>();
    st->task = std::move(task);
    st->head = std::move(head);
    st->next = std::move(first);
    st->echo = std::move(echo);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [st](size_t, httplib::DataSink& sink) {
          if (st->done) {
            sink.done();
            return true;
          }
          Task& t = *st->task;
          const bool iu = t.request.include_usage;
          TaskEvent e;
          if (st->next) {
            e = std::move(*st->next);
            st->next.reset();
          } else {
            while (!t.pop(e, std::chrono::milliseconds(100))) {
              if (!sink.is_writable()) {
                t.cancelled = true;  // the client went away: its slot is freed
                return false;
              }
            }
          }
          std::string out;
          if (st->first) {
            st->first = false;
            const std::string empty;
            out += sse(chunk_body(st->head, st->head.chat ? &empty : &st->echo, true,
                                  FinishReason::None, iu));
          }
          if (e.kind == TaskEvent::Kind::Delta) {
            out += sse(chunk_body(st->head, &e.text, false, FinishReason::None, iu));
          } else if (e.kind == TaskEvent::Kind::Done) {
            out += sse(chunk_body(st->head, nullptr, false, e.finish, iu));
            if (iu) out += sse(usage_chunk(st->head, e.usage));
            out += "data: [DONE]\n\n";
            st->done = true;
          } else {
            out += sse(error_body(*e.error));
            out += "data: [DONE]\n\n";
            st->done = true;
          }
          if (!sink.write(out.data(), out.size())) {
            t.cancelled = true;
            return false;
          }
          if (st->done) sink.done();
          return true;
        },
        [st](bool) {
          if (!st->done) st->task->cancelled = true;
        });
  }

  void embeddings(const httplib::Request& req, httplib::Response& res) {
    EmbeddingRequest r = parse_embedding_request(req.body, limits);
    auto task = std::make_shared<Task>();
    task->kind = Task::Kind::Embed;
    const Tokenizer& t = encoder ? encoder->tokenizer() : *tok;  // the embedding model's words
    for (const std::string& s : r.input) task->embed_inputs.push_back(t.encode(s, true, false));
    for (auto& ids : r.input_tokens) task->embed_inputs.push_back(std::move(ids));
    task->owner = owner(req);
    task->deadline = Clock::now() + std::chrono::seconds(o.timeout_seconds);
    scheduler->submit(task);
    TaskEvent e;
    wait(*task, e);
    if (e.kind == TaskEvent::Kind::Failed) {
      send_error(res, *e.error);
      return;
    }
    res.set_content(
        embeddings_body(model_id, task->embeddings, r.encoding_format, e.usage.prompt_tokens),
        "application/json");
  }
};

// Runs `fn`, turning what it throws into the OpenAI error object.
template <class Fn>
void guarded(httplib::Response& res, Fn&& fn) {
  try {
    fn();
  } catch (const ApiError& e) {
    send_error(res, e);
  } catch (const Error& e) {
    send_error(res, ApiError(400, "invalid_request_error", e.what()));
  } catch (const std::exception& e) {
    send_error(res, ApiError(500, "server_error", fmt::format("internal error: {}", e.what())));
  }
}

}  // namespace

int run_server(const ServerOptions& o) {
  if (o.port < 0 || o.port > 65535) throw Error(fmt::format("--port {} is out of range", o.port));
  if (o.timeout_seconds < 1) {
    throw Error(fmt::format("--timeout must be >= 1 second, got {}", o.timeout_seconds));
  }
  if (o.max_tokens < 1) throw Error(fmt::format("--max-tokens must be >= 1, got {}", o.max_tokens));
  for (const std::string& k : o.api_keys) {
    if (k.empty()) throw Error("an API key is empty");
  }
  if (!o.sessions_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.sessions_dir, ec);
    if (!std::filesystem::is_directory(o.sessions_dir, ec)) {
      throw Error(
          fmt::format("--sessions-dir '{}' is not a directory that can be made", o.sessions_dir));
    }
  }
  // SIGINT and SIGTERM are taken by sigwait below, never by a handler in some thread: every
  // thread started from here inherits the blocked mask.
  sigset_t stop_signals, old_mask;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
  struct RestoreMask {
    sigset_t mask;
    ~RestoreMask() { pthread_sigmask(SIG_SETMASK, &mask, nullptr); }
  } restore{old_mask};

  Service svc(o);
  httplib::Server http;
  // Every streaming client holds a thread for its whole reply: enough for every slot, the
  // queue behind them, and short requests beside.
  const size_t n_threads = static_cast<size_t>(o.parallel + o.queue + 8);
  http.new_task_queue = [n_threads] { return new httplib::ThreadPool(n_threads); };
  http.set_payload_max_length(o.max_body_bytes);
  http.set_read_timeout(60);
  http.set_write_timeout(60);
  http.set_keep_alive_timeout(5);

  http.set_pre_routing_handler([&](const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    if (!svc.authorized(req)) {
      send_error(res, ApiError(401, "authentication_error",
                               "invalid or missing API key: send 'Authorization: Bearer KEY'", "",
                               "invalid_api_key"));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!svc.ready) {
      send_error(
          res, ApiError(503, "server_error", "the model is loading; retry shortly", "", "loading"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.set_error_handler([&](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) {
      send_error(res,
                 ApiError(404, "invalid_request_error",
                          fmt::format("no route {} {}", req.method, req.path), "", "unknown_url"));
    } else if (res.status == 413) {
      send_error(res,
                 ApiError(413, "invalid_request_error",
                          fmt::format("the request body is larger than {} bytes", o.max_body_bytes),
                          "", "payload_too_large"));
    } else {
      send_error(res,
                 ApiError(res.status, res.status >= 500 ? "server_error" : "invalid_request_error",
                          fmt::format("HTTP {}", res.status)));
    }
  });
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        send_error(res, ApiError(500, "server_error", "internal error: " + what));
      });
  http.set_logger([&](const httplib::Request& req, const httplib::Response& res) {
    if (res.status < 400) {
      svc.metrics.requests_ok++;
    } else if (res.status < 500) {
      svc.metrics.requests_client_error++;
    } else {
      svc.metrics.requests_server_error++;
    }
    if (!o.quiet) {
      std::fprintf(stderr, "engram serve: %s %s %d\n", req.method.c_str(), req.path.c_str(),
                   res.status);
    }
  });

  http.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
    if (!svc.ready) {
      res.status = 503;
      res.set_content(R"({"status":"loading"})", "application/json");
    } else {
      res.set_content(R"({"status":"ok"})", "application/json");
    }
  });
  http.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(svc.metrics.prometheus(), "text/plain; version=0.0.4");
  });
  http.Get("/v1/models", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(models_body(svc.model_id, svc.created), "application/json");
  });
  http.Get(R"(/v1/models/(.+))", [&](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      if (req.matches[1] != svc.model_id) {
        throw ApiError(404, "invalid_request_error",
                       fmt::format("the model '{}' does not exist: this server serves '{}'",
                                   req.matches[1].str(), svc.model_id),
                       "model", "model_not_found");
      }
      res.set_content(nlohmann::json{{"id", svc.model_id},
                                     {"object", "model"},
                                     {"created", svc.created},
                                     {"owned_by", "engram"}}
                          .dump(),
                      "application/json");
    });
  });
  http.Post("/v1/chat/completions", [&](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { svc.generate(req, res, true); });
  });
  http.Post("/v1/completions", [&](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { svc.generate(req, res, false); });
  });
  http.Post("/v1/embeddings", [&](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { svc.embeddings(req, res); });
  });
  http.Delete(R"(/v1/conversations/([^/]+))", [&](const httplib::Request& req,
                                                  httplib::Response& res) {
    guarded(res, [&] {
      const std::string id = req.matches[1];
      check_conversation_id(id, "conversation");
      svc.scheduler->delete_conversation(svc.owner(req), id);
      res.set_content(
          nlohmann::json{{"id", id}, {"object", "conversation.deleted"}, {"deleted", true}}.dump(),
          "application/json");
    });
  });

  // The agent memory's REST API (src/server/memory_api.h).
  auto memory_route = [&](const httplib::Request& req, httplib::Response& res, auto&& fn) {
    guarded(res, [&] {
      if (!svc.memory_api) {
        throw ApiError(404, "invalid_request_error",
                       "this server keeps no agent memory: start it with --memory-db FILE or "
                       "--memory-pg URL",
                       "", "memory_disabled");
      }
      const MemoryResponse r = fn(*svc.memory_api, svc.memory_user(req));
      res.status = r.status;
      res.set_content(r.body, "application/json");
    });
  };
  using Req = const httplib::Request&;
  using Res = httplib::Response&;
  http.Post(R"(/v1/memories/?)", [&](Req req, Res res) {
    memory_route(req, res, [&](MemoryApi& m, const std::string& u) { return m.add(u, req.body); });
  });
  http.Get(R"(/v1/memories/?)", [&](Req req, Res res) {
    memory_route(req, res, [&](MemoryApi& m, const std::string& u) {
      return m.list(u, req.get_param_value("user_id"));
    });
  });
  http.Delete(R"(/v1/memories/?)", [&](Req req, Res res) {
    memory_route(req, res, [&](MemoryApi& m, const std::string& u) {
      return m.wipe(u, req.get_param_value("user_id"));
    });
  });
  http.Post(R"(/v1/memories/search/?)", [&](Req req, Res res) {
    memory_route(req, res,
                 [&](MemoryApi& m, const std::string& u) { return m.search(u, req.body); });
  });
  http.Post(R"(/v1/memories/end/?)", [&](Req req, Res res) {
    memory_route(req, res, [&](MemoryApi& m, const std::string& u) { return m.end(u, req.body); });
  });
  http.Get(R"(/v1/memories/([^/]+)/history/?)", [&](Req req, Res res) {
    memory_route(req, res, [&](MemoryApi& m, const std::string& u) {
      return m.history(u, req.matches[1].str());
    });
  });
  http.Get(R"(/v1/memories/([^/]+)/?)", [&](Req req, Res res) {
    memory_route(req, res, [&](MemoryApi& m, const std::string& u) {
      return m.get(u, req.matches[1].str());
    });
  });
  http.Put(R"(/v1/memories/([^/]+)/?)", [&](Req req, Res res) {
    memory_route(req, res, [&](MemoryApi& m, const std::string& u) {
      return m.update(u, req.matches[1].str(), req.body);
    });
  });
  http.Delete(R"(/v1/memories/([^/]+)/?)", [&](Req req, Res res) {
    memory_route(req, res, [&](MemoryApi& m, const std::string& u) {
      return m.remove(u, req.matches[1].str());
    });
  });

  if (!http.bind_to_port(o.host, o.port)) {
    throw Error(fmt::format("cannot listen on {}:{}: {}", o.host, o.port, std::strerror(errno)));
  }
  std::thread listener([&] { http.listen_after_bind(); });
  std::fprintf(stderr, "engram serve: listening on http://%s:%d (loading %s)\n", o.host.c_str(),
               o.port, o.model_path.c_str());
  try {
    if (!o.memory_store.empty()) {
      svc.memory_store =
          agent_memory::synchronized_store(agent_memory::open_memory_store(o.memory_store));
    }
    svc.model = Model::load(o.model_path);
    svc.tok = Tokenizer::from_gguf(svc.model->file());
    if (!o.embed_model.empty()) svc.encoder = TextEncoder::load(o.embed_model);
    svc.grammar_vocab = std::make_shared<GrammarVocab>(*svc.tok);
    svc.tmpl =
        std::make_unique<ChatTemplate>(ChatTemplate::from_gguf(svc.model->file(), o.chat_template));
    svc.pool = std::make_unique<ThreadPool>(o.threads > 0 ? o.threads : default_thread_count());
    svc.model_id =
        o.model_id.empty() ? std::filesystem::path(o.model_path).stem().string() : o.model_id;
    svc.created = static_cast<int64_t>(std::time(nullptr));
    SchedulerOptions so;
    so.parallel = o.parallel;
    so.queue = o.queue;
    so.memory = o.memory;
    so.n_ctx = o.n_ctx;
    so.n_batch = o.n_batch;
    so.sessions_dir = o.sessions_dir;
    so.max_tokens = o.max_tokens;
    so.memory_store = svc.memory_store.get();
    so.memory_idle_seconds = o.memory_idle_seconds;
    so.memory_learned_rerank = o.memory_learned_rerank;
    so.memory_rerank_rmm = o.memory_rerank_rmm;
    so.embed_model = svc.encoder.get();
    so.embed_model_path = o.embed_model;
    svc.scheduler =
        std::make_unique<Scheduler>(*svc.model, *svc.tok, *svc.tmpl, *svc.pool, so, svc.metrics);
    if (svc.memory_store) {
      Scheduler& sched = *svc.scheduler;
      svc.memory_api = std::make_unique<MemoryApi>(
          *svc.memory_store, [&sched](const auto& fn) { sched.run_with_memory_model(fn); },
          [&sched](const std::string& user, const std::string& conversation) {
            return sched.end_memory_conversation(user, conversation);
          });
    }
  } catch (...) {
    // stop() does nothing until the listener runs: a store or model that fails at once would
    // otherwise leave it accepting forever (and this thread waiting for it).
    for (int i = 0; i < 500 && !http.is_running(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    http.stop();
    listener.join();
    throw;
  }
  svc.ready = true;
  if (svc.memory_store) {
    std::fprintf(stderr, "engram serve: agent memory in %s%s\n",
                 svc.memory_store->location().c_str(),
                 o.api_keys.empty() ? " (no API keys: every client is the user 'anonymous')" : "");
  }
  std::fprintf(stderr, "engram serve: ready: model '%s', %d slot(s), memory %s, template %s\n",
               svc.model_id.c_str(), o.parallel, o.memory.kind.c_str(), svc.tmpl->name().c_str());

  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::fprintf(stderr,
               "engram serve: %s: stopping (in-flight requests are cancelled, "
               "conversations saved)\n",
               sig == SIGINT ? "SIGINT" : "SIGTERM");
  svc.scheduler->shutdown();
  http.stop();
  listener.join();
  svc.scheduler.reset();
  std::fprintf(stderr, "engram serve: stopped\n");
  return 0;
}

}  // namespace engram
