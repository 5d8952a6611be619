// passage: the one binary. `passage serve` runs a node; `passage replica` a read
// replica fed from Kafka; `passage replay` rebuilds the read models from the log;
// `passage export`; `passage version`.

#include <CLI/CLI.hpp>

#include <unistd.h>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "app/export.h"
#include "app/replica.h"
#include "app/server.h"
#include "common/random.h"
#include "common/time_format.h"
#include "eventstore/event_codec.h"
#include "eventstore/event_store.h"
#include "eventstore/key_store.h"
#include "projections/projector.h"
#include "projections/read_models.h"

namespace {

using namespace passage;

// Starts a node (app::server or app::replica_node) and runs it until SIGINT/SIGTERM.
template <typename Node, typename Options>
int run_until_signal(const char* command, Options options) {
  // Block the stop signals in every thread; a dedicated thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto node = Node::start(std::move(options));
  if (!node) {
    std::fprintf(stderr, "passage %s: %s\n", command, node.error().c_str());
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

// HOST:PORT of --listen into address and port; false (after saying why) when malformed.
bool parse_listen(const char* command, const std::string& listen, std::string& address,
                  std::uint16_t& port) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "passage %s: --listen must be HOST:PORT, got '%s'\n", command,
                 listen.c_str());
    return false;
  }
  address = listen.substr(0, colon);
  if (address.size() > 2 && address.front() == '[') address = address.substr(1, address.size() - 2);
  try {
    int p = std::stoi(listen.substr(colon + 1));
    if (p < 0 || p > 65535) throw std::out_of_range("port");
    port = static_cast<std::uint16_t>(p);
  } catch (const std::exception&) {
    std::fprintf(stderr, "passage %s: --listen port must be 0-65535, got '%s'\n", command,
                 listen.c_str());
    return false;
  }
  return true;
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

  app::replica_node_options replica_options;
  std::string replica_listen = "127.0.0.1:8081";
  auto* replica_cmd = cli.add_subcommand(
      "replica", "Run a read replica: read models fed from Kafka, the query API read-only");
  replica_cmd
      ->add_option("--kafka-brokers", replica_options.kafka_brokers,
                   "Kafka bootstrap servers host:port,... the primary publishes to")
      ->envname("PASSAGE_KAFKA_BROKERS")
      ->required();
  replica_cmd->add_option("--kafka-topic", replica_options.kafka_topic, "Topic to consume")
      ->envname("PASSAGE_KAFKA_TOPIC")
      ->capture_default_str();
  replica_cmd->add_option("--listen", replica_listen, "HOST:PORT of the HTTP API")
      ->envname("PASSAGE_LISTEN")
      ->capture_default_str();
  replica_cmd->add_option("--data-dir", replica_options.data_dir, "The replica's own folder")
      ->envname("PASSAGE_DATA_DIR")
      ->capture_default_str();
  replica_cmd
      ->add_option("--primary", replica_options.primary,
                   "Where the primary answers (named when a command is refused)")
      ->envname("PASSAGE_PRIMARY")
      ->capture_default_str();
  replica_cmd->add_option("--threads", replica_options.threads, "I/O threads")
      ->envname("PASSAGE_THREADS")
      ->capture_default_str();
  replica_cmd
      ->add_flag("--trust-proxy", replica_options.trust_proxy,
                 "Client IP from the first X-Forwarded-For entry")
      ->envname("PASSAGE_TRUST_PROXY");

  std::string replay_dir = "data";
  auto* replay_cmd =
      cli.add_subcommand("replay", "Rebuild every read model from position 0 of the log");
  replay_cmd->add_option("--data-dir", replay_dir, "Data folder")
      ->envname("PASSAGE_DATA_DIR")
      ->capture_default_str();

  app::export_options export_options;
  std::string export_what = "claims", export_format = "csv", export_output = "-";
  std::string export_invite, export_org, export_since, export_until, export_types;
  auto* export_cmd = cli.add_subcommand(
      "export", "Export claims, rejections, leads or events as CSV or NDJSON (runs beside serve)");
  export_cmd->add_option("--data-dir", export_options.data_dir, "Data folder")
      ->envname("PASSAGE_DATA_DIR")
      ->capture_default_str();
  export_cmd->add_option("what", export_what, "claims | rejections | leads | events")
      ->check(CLI::IsMember({"claims", "rejections", "leads", "events"}));
  export_cmd->add_option("--format", export_format, "csv | ndjson")
      ->check(CLI::IsMember({"csv", "ndjson"}))
      ->capture_default_str();
  export_cmd->add_option("--invite", export_invite, "Only this invite (id)");
  export_cmd->add_option("--org", export_org, "Only this organization (id)");
  export_cmd->add_option("--since", export_since, "recorded_at >= this RFC 3339 time");
  export_cmd->add_option("--until", export_until, "recorded_at < this RFC 3339 time");
  export_cmd->add_option("--type", export_types, "events: comma-separated event types");
  export_cmd->add_option("--output,-o", export_output, "File to write, - for stdout")
      ->capture_default_str();

  CLI11_PARSE(cli, argc, argv);

  if (*export_cmd) {
    auto& e = export_options;
    e.kind = export_what == "events"       ? app::export_kind::events
             : export_what == "rejections" ? app::export_kind::rejections
             : export_what == "leads"      ? app::export_kind::leads
                                           : app::export_kind::claims;
    e.format = export_format == "ndjson" ? app::export_format::ndjson : app::export_format::csv;
    for (auto [text, slot, name] : {std::tuple{&export_invite, &e.invite, "--invite"},
                                    std::tuple{&export_org, &e.org, "--org"}}) {
      if (text->empty()) continue;
      *slot = uuid::parse(*text);
      if (!*slot) {
        std::fprintf(stderr, "passage export: %s must be an id (uuid), got '%s'\n", name,
                     text->c_str());
        return 2;
      }
    }
    for (auto [text, slot, name] : {std::tuple{&export_since, &e.since, "--since"},
                                    std::tuple{&export_until, &e.until, "--until"}}) {
      if (text->empty()) continue;
      *slot = parse_rfc3339(*text);
      if (!*slot) {
        std::fprintf(stderr, "passage export: %s must be an RFC 3339 time, got '%s'\n", name,
                     text->c_str());
        return 2;
      }
    }
    for (std::string_view rest = export_types; !rest.empty();) {
      auto comma = rest.find(',');
      e.types.emplace_back(rest.substr(0, comma));
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    }
    std::FILE* out = stdout;
    if (export_output != "-") {
      out = std::fopen(export_output.c_str(), "w");
      if (!out) {
        std::fprintf(stderr, "passage export: cannot write %s\n", export_output.c_str());
        return 1;
      }
    }
    e.out = out;
    e.progress = isatty(fileno(stderr));
    auto r = app::run_export(e);
    if (out != stdout) std::fclose(out);
    if (!r) {
      std::fprintf(stderr, "passage export: %s\n", r.error().c_str());
      return 1;
    }
    std::fprintf(stderr, "passage export: %llu rows (up to position %llu) in %.2f s\n",
                 static_cast<unsigned long long>(r->rows),
                 static_cast<unsigned long long>(r->up_to_position), r->seconds);
    return 0;
  }

  if (*replica_cmd) {
    if (!parse_listen("replica", replica_listen, replica_options.address, replica_options.port))
      return 2;
    return run_until_signal<app::replica_node>("replica", std::move(replica_options));
  }
  if (*serve_cmd) {
    if (!parse_listen("serve", listen, serve_options.address, serve_options.port)) return 2;
    if (const char* t = std::getenv("PASSAGE_OWNER_TOKEN"); t && *t) serve_options.owner_token = t;
    if (const char* t = std::getenv("PASSAGE_OPERATOR_TOKEN"); t && *t) {
      serve_options.operator_token = t;
    }
    return run_until_signal<app::server>("serve", std::move(serve_options));
  }
  if (*replay_cmd) {
    return replay(replay_dir);
  }
  return 0;
}
