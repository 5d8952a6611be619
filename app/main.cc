// passage: the one binary. `passage serve` runs a node; `passage replay`
// rebuilds the read models from the log; `passage version`.

#include <CLI/CLI.hpp>

#include <unistd.h>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "app/export.h"
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
  serve_cmd
      ->add_option("--smtp-url", serve_options.smtp_url,
                   "SMTP server smtp://host:port or smtps://host:port; empty: .eml files in "
                   "<data-dir>/outbox")
      ->envname("PASSAGE_SMTP_URL");
  serve_cmd->add_flag("--smtp-starttls", serve_options.smtp_starttls, "Require STARTTLS")
      ->envname("PASSAGE_SMTP_STARTTLS");
  serve_cmd->add_option("--smtp-user", serve_options.smtp_user, "SMTP AUTH user")
      ->envname("PASSAGE_SMTP_USER");
  serve_cmd->add_option("--smtp-password", serve_options.smtp_password, "SMTP AUTH password")
      ->envname("PASSAGE_SMTP_PASSWORD");
  serve_cmd->add_option("--mail-from", serve_options.mail_from, "From header of mails")
      ->envname("PASSAGE_MAIL_FROM")
      ->capture_default_str();
  serve_cmd
      ->add_option("--public-url", serve_options.public_url,
                   "Base URL of learner links in mails; empty: http://<listen>")
      ->envname("PASSAGE_PUBLIC_URL");
  serve_cmd
      ->add_option("--mail-templates", serve_options.mail_templates,
                   "Folder of per-organization templates <org id>/invitation.subject|.txt|.html")
      ->envname("PASSAGE_MAIL_TEMPLATES");
  serve_cmd
      ->add_option("--mail-max-attempts", serve_options.mail_max_attempts,
                   "Attempts per mail before it is dead-lettered")
      ->envname("PASSAGE_MAIL_MAX_ATTEMPTS")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();

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
