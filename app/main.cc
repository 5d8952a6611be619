// passage: the one binary. `passage serve` runs a node; `passage replay`
// rebuilds the read models from the log; `passage version`.

#include <CLI/CLI.hpp>

#include <unistd.h>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "app/server.h"
#include "common/random.h"
#include "eventstore/event_codec.h"
#include "eventstore/event_store.h"
#include "eventstore/key_store.h"
#include "projections/projector.h"
#include "projections/read_models.h"

namespace {

using namespace passage;

int serve(app::server_options options) {
  // Block the stop signals in every thread; a dedicated thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto node = app::server::start(std::move(options));
  if (!node) {
    std::fprintf(stderr, "passage serve: %s\n", node.error().c_str());
    return 1;
  }
  int sig = 0;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "passage: %s received, finishing requests in flight\n",
               sig == SIGINT ? "SIGINT" : "SIGTERM");
  (*node)->stop(std::chrono::seconds(10));
  std::fprintf(stderr, "passage: stopped\n");
  return 0;
}

// Rebuilds <dir>/readmodels from the whole log, printing a progress bar.
int replay(const std::string& dir) {
  namespace fs = std::filesystem;
  auto secret_path = fs::path(dir) / "server.secret";
  std::string secret;
  {
    std::FILE* f = std::fopen(secret_path.c_str(), "r");
    if (!f) {
      std::fprintf(stderr, "passage replay: %s not found: is %s a Passage data folder?\n",
                   secret_path.c_str(), dir.c_str());
      return 1;
    }
    char buf[256] = {};
    if (std::fgets(buf, sizeof buf, f)) secret = buf;
    std::fclose(f);
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  }
  // The log is only read: a secondary instance never writes it.
  auto store = eventstore::open_event_store(
      {.path = (fs::path(dir) / "events").string(), .read_only = true});
  if (!store) {
    std::fprintf(stderr, "passage replay: %s\n", store.error().message.c_str());
    return 1;
  }
  auto keys = eventstore::open_key_store({.path = (fs::path(dir) / "keys").string()});
  if (!keys) {
    std::fprintf(stderr, "passage replay: %s (stop passage serve first)\n",
                 keys.error().message.c_str());
    return 1;
  }
  eventstore::event_codec codec(**keys, app::derive_key(secret, "pepper"));
  auto models =
      projections::read_models::open({.path = (fs::path(dir) / "readmodels").string()}, codec);
  if (!models) {
    std::fprintf(stderr, "passage replay: %s (stop passage serve first)\n",
                 models.error().message.c_str());
    return 1;
  }
  bool tty = isatty(fileno(stderr));
  auto r = projections::rebuild(
      **store, **models, {.on_progress = [tty](const projections::rebuild_progress& p) {
        double share = p.events_total ? double(p.events_done) / double(p.events_total) : 1.0;
        int filled = static_cast<int>(share * 30);
        std::fprintf(
            stderr, "%s[%.*s%.*s] %3.0f%% %llu/%llu events, %.0f events/s%s", tty ? "\r" : "",
            filled, "##############################", 30 - filled, "..............................",
            share * 100, static_cast<unsigned long long>(p.events_done),
            static_cast<unsigned long long>(p.events_total), p.events_per_second, tty ? "" : "\n");
      }});
  if (tty) std::fprintf(stderr, "\n");
  if (!r) {
    std::fprintf(stderr, "passage replay: %s\n", r.error().message.c_str());
    return 1;
  }
  std::printf("rebuilt read models from %llu events in %.2f s (%.0f events/s)\n",
              static_cast<unsigned long long>(r->events_done), r->seconds, r->events_per_second);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"Passage: track invites, event-sourced"};
  cli.require_subcommand(1);
  cli.set_version_flag("--version", "passage 0.1.0");

  app::server_options serve_options;
  std::string listen = "127.0.0.1:8080";
  std::string owner_token, operator_token;
  auto* serve_cmd = cli.add_subcommand("serve", "Run a Passage node (HTTP API, read models)");
  serve_cmd->add_option("--data-dir", serve_options.data_dir, "Data folder")
      ->envname("PASSAGE_DATA_DIR")
      ->capture_default_str();
  serve_cmd->add_option("--listen", listen, "HOST:PORT of the HTTP API")
      ->envname("PASSAGE_LISTEN")
      ->capture_default_str();
  serve_cmd
      ->add_option("--claim-limit-per-ip", serve_options.claim_limit_per_ip,
                   "Claims per client IP, COUNT/DURATION or 0")
      ->envname("PASSAGE_CLAIM_LIMIT_PER_IP")
      ->capture_default_str();
  serve_cmd
      ->add_option("--claim-limit-per-email", serve_options.claim_limit_per_email,
                   "Claims per email, COUNT/DURATION or 0")
      ->envname("PASSAGE_CLAIM_LIMIT_PER_EMAIL")
      ->capture_default_str();
  serve_cmd
      ->add_flag("--trust-proxy", serve_options.trust_proxy,
                 "Client IP from the first X-Forwarded-For entry")
      ->envname("PASSAGE_TRUST_PROXY");
  serve_cmd
      ->add_option("--kafka-brokers", serve_options.kafka_brokers,
                   "Kafka bootstrap servers host:port,...; empty: embedded broker; none: off")
      ->envname("PASSAGE_KAFKA_BROKERS");
  serve_cmd->add_option("--kafka-topic", serve_options.kafka_topic, "Topic events are published to")
      ->envname("PASSAGE_KAFKA_TOPIC")
      ->capture_default_str();
  serve_cmd->add_option("--threads", serve_options.threads, "I/O threads")
      ->envname("PASSAGE_THREADS")
      ->capture_default_str();

  std::string replay_dir = "data";
  auto* replay_cmd =
      cli.add_subcommand("replay", "Rebuild every read model from position 0 of the log");
  replay_cmd->add_option("--data-dir", replay_dir, "Data folder")
      ->envname("PASSAGE_DATA_DIR")
      ->capture_default_str();

  CLI11_PARSE(cli, argc, argv);

  if (*serve_cmd) {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos) {
      std::fprintf(stderr, "passage serve: --listen must be HOST:PORT, got '%s'\n", listen.c_str());
      return 2;
    }
    serve_options.address = listen.substr(0, colon);
    if (serve_options.address.size() > 2 && serve_options.address.front() == '[') {
      serve_options.address = serve_options.address.substr(1, serve_options.address.size() - 2);
    }
    try {
      int port = std::stoi(listen.substr(colon + 1));
      if (port < 0 || port > 65535) throw std::out_of_range("port");
      serve_options.port = static_cast<std::uint16_t>(port);
    } catch (const std::exception&) {
      std::fprintf(stderr, "passage serve: --listen port must be 0-65535, got '%s'\n",
                   listen.c_str());
      return 2;
    }
    if (const char* t = std::getenv("PASSAGE_OWNER_TOKEN"); t && *t) serve_options.owner_token = t;
    if (const char* t = std::getenv("PASSAGE_OPERATOR_TOKEN"); t && *t) {
      serve_options.operator_token = t;
    }
    return serve(std::move(serve_options));
  }
  if (*replay_cmd) {
    return replay(replay_dir);
  }
  return 0;
}
