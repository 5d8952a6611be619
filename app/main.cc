// passage: the one binary. `passage serve` runs a node; `passage replica` a read
// replica fed from Kafka; `passage replay` rebuilds the read models from the log;
// `passage export` and `passage usage` answer from the log beside a running node;
// `passage --version`. Exit status: 0 done, 1 failed while running, 2 bad usage (an
// unknown command or option, a malformed value), with a message naming the problem.

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <sys/resource.h>
#include <sys/stat.h>

#include <unistd.h>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "api/logging.h"
#include "api/rate_limiter.h"
#include "app/export.h"
#include "app/offline.h"
#include "app/replica.h"
#include "app/server.h"
#include "common/random.h"
#include "common/time_format.h"
#include "eventstore/event_codec.h"
#include "eventstore/event_store.h"
#include "eventstore/key_store.h"
#include "projections/json_views.h"
#include "projections/point_in_time.h"
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
  const std::string_view digits = std::string_view(listen).substr(colon + 1);
  unsigned p = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), p);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || p > 65535) {
    std::fprintf(stderr, "passage %s: --listen port must be 0-65535, got '%s'\n", command,
                 listen.c_str());
    return false;
  }
  port = static_cast<std::uint16_t>(p);
  return true;
}

void print_progress(bool tty, const projections::rebuild_progress& p) {
  double share = p.events_total ? double(p.events_done) / double(p.events_total) : 1.0;
  int filled = static_cast<int>(share * 30);
  std::fprintf(
      stderr, "%s[%.*s%.*s] %3.0f%% %llu/%llu events, %.0f events/s%s", tty ? "\r" : "", filled,
      "##############################", 30 - filled, "..............................", share * 100,
      static_cast<unsigned long long>(p.events_done),
      static_cast<unsigned long long>(p.events_total), p.events_per_second, tty ? "" : "\n");
}

struct replay_options {
  std::string data_dir = "data";
  std::string out;    // "": the live folder <data_dir>/readmodels
  std::string as_of;  // RFC 3339; "": the whole log
};

// Rebuilds read models from the log with a progress bar: the live folder
// (<dir>/readmodels, server stopped), or as of an instant into a folder of their own
// (--out), beside a running server: the log and the keys are then only read.
int replay(const replay_options& o) {
  namespace fs = std::filesystem;
  std::optional<timestamp> as_of;
  if (!o.as_of.empty()) {
    as_of = parse_rfc3339(o.as_of);
    if (!as_of) {
      std::fprintf(stderr, "passage replay: --as-of must be an RFC 3339 time, got '%s'\n",
                   o.as_of.c_str());
      return 2;
    }
    if (o.out.empty()) {
      std::fprintf(stderr,
                   "passage replay: --as-of needs --out DIR (the live read models always follow "
                   "the whole log)\n");
      return 2;
    }
  }
  const fs::path live = fs::path(o.data_dir) / "readmodels";
  std::error_code ec;
  if (!o.out.empty() && fs::weakly_canonical(o.out, ec) == fs::weakly_canonical(live, ec)) {
    std::fprintf(stderr, "passage replay: --out must not be the live read models (%s)\n",
                 live.c_str());
    return 2;
  }
  if (!o.out.empty()) {
    if (auto usable = projections::read_models::check_folder(o.out); !usable) {
      std::fprintf(stderr,
                   "passage replay: --out must be a new or empty folder or one of read models: "
                   "%s; nothing was changed\n",
                   usable.error().message.c_str());
      return 2;
    }
  }
  // With --out the server may be running: open its keys read-only too.
  std::unique_ptr<app::offline_data> data;
  if (o.out.empty()) {
    auto opened = app::open_offline(o.data_dir, app::key_access::exclusive, 0);
    if (!opened) {
      std::fprintf(stderr, "passage replay: %s (stop passage serve first)\n",
                   opened.error().c_str());
      return 1;
    }
    data = std::move(*opened);
  } else {
    auto opened = app::open_offline(o.data_dir, app::key_access::shared, 0);
    if (!opened) {
      std::fprintf(stderr, "passage replay: %s\n", opened.error().c_str());
      return 1;
    }
    data = std::move(*opened);
  }
  const std::string target = o.out.empty() ? live.string() : o.out;
  // A folder of another record format (an older Passage's) is wiped: it is rebuilt from
  // position 0 anyway, and refusing it would send the user back to `passage replay`.
  projections::read_models_options models_options{.path = target};
  models_options.on_format_change = [&target](std::string_view found) {
    std::fprintf(stderr, "passage replay: %s was in record format %.*s; rebuilding it\n",
                 target.c_str(), static_cast<int>(found.size()), found.data());
  };
  auto models = projections::read_models::open(models_options, *data->codec);
  if (!models) {
    std::fprintf(stderr, "passage replay: %s%s\n", models.error().message.c_str(),
                 o.out.empty() ? " (stop passage serve first)" : "");
    return 1;
  }
  bool tty = isatty(fileno(stderr));
  auto r = projections::rebuild(
      *data->store, **models,
      {.on_progress = [tty](const projections::rebuild_progress& p) { print_progress(tty, p); },
       .as_of = as_of});
  if (tty) std::fprintf(stderr, "\n");
  if (!r) {
    std::fprintf(stderr, "passage replay: %s\n", r.error().message.c_str());
    return 1;
  }
  // Whatever is still only in memory goes to the files now, so "rebuilt" is not said of
  // a folder whose last write failed.
  if (auto closed = (*models)->close(); !closed) {
    std::fprintf(stderr, "passage replay: %s\n", closed.error().message.c_str());
    return 1;
  }
  std::printf("rebuilt read models from %llu events%s%s into %s in %.2f s (%.0f events/s)\n",
              static_cast<unsigned long long>(r->events_done), as_of ? " recorded up to " : "",
              as_of ? format_rfc3339(*as_of).c_str() : "", target.c_str(), r->seconds,
              r->events_per_second);
  return 0;
}

// Prints an invite's usage as JSON (GET /v1/invites/{id}/usage), now or as of an instant,
// rebuilt from the log; runs beside a running server.
int usage(const std::string& data_dir, const std::string& invite, const std::string& as_of_text) {
  auto id = uuid::parse(invite);
  if (!id) {
    std::fprintf(stderr, "passage usage: --invite must be an id (uuid), got '%s'\n",
                 invite.c_str());
    return 2;
  }
  std::optional<timestamp> as_of;
  if (!as_of_text.empty()) {
    as_of = parse_rfc3339(as_of_text);
    if (!as_of) {
      std::fprintf(stderr, "passage usage: --as-of must be an RFC 3339 time, got '%s'\n",
                   as_of_text.c_str());
      return 2;
    }
  }
  auto data = app::open_offline(data_dir);
  if (!data) {
    std::fprintf(stderr, "passage usage: %s\n", data.error().c_str());
    return 1;
  }
  // "Now" is the last event of the log.
  timestamp at = as_of ? *as_of : timestamp::max();
  auto then = projections::invite_as_of(*(*data)->store, *(*data)->codec, *id, at);
  if (!then) {
    std::fprintf(stderr, "passage usage: %s\n", then.error().message.c_str());
    return 1;
  }
  if (!*then) {
    std::fprintf(stderr, "passage usage: no invite %s%s%s\n", invite.c_str(), as_of ? " at " : "",
                 as_of ? as_of_text.c_str() : "");
    return 1;
  }
  auto body = projections::to_json((*then)->usage());
  if (as_of) body["as_of"] = format_rfc3339(*as_of);
  std::printf("%s\n", body.dump(2).c_str());
  return 0;
}

}  // namespace

// Open files: RocksDB keeps table files open in three folders, the server a socket per
// connection, and a rebuild's final merge reads every run file from each of its key ranges
// at once. The usual soft limit (1024) is far below the hard one; asking for the hard
// limit is what servers do (nginx's worker_rlimit_nofile, systemd's LimitNOFILE).
static void raise_open_file_limit() {
  rlimit l{};
  if (::getrlimit(RLIMIT_NOFILE, &l) != 0 || l.rlim_cur >= l.rlim_max) return;
  l.rlim_cur = l.rlim_max;
  (void)::setrlimit(RLIMIT_NOFILE, &l);  // the soft limit stays as it was on failure
}

int main(int argc, char** argv) {
  // What passage writes (data folders, keys, tokens, mail outboxes, exports with personal
  // data) is for the user it runs as only.
  ::umask(077);
  raise_open_file_limit();
  // The node's own logs (the mailer's warnings, ...) as JSON lines on stderr, as its access
  // log is: spdlog's default logger writes coloured text to stdout.
  spdlog::set_default_logger(passage::api::make_json_logger("passage"));
  CLI::App cli{"Passage: track invites, event-sourced"};
  cli.require_subcommand(1);
  cli.set_version_flag("--version", "passage 0.1.0");

  app::server_options serve_options;
  // A malformed limit is bad usage (status 2), found before anything starts.
  const CLI::Validator rate_limit_check(
      [](std::string& value) -> std::string {
        auto parsed = api::parse_rate_limit(value);
        return parsed ? std::string() : parsed.error();
      },
      "COUNT/DURATION");
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
      ->check(rate_limit_check)
      ->envname("PASSAGE_CLAIM_LIMIT_PER_IP")
      ->capture_default_str();
  serve_cmd
      ->add_option("--claim-limit-per-email", serve_options.claim_limit_per_email,
                   "Claims per email, COUNT/DURATION or 0")
      ->check(rate_limit_check)
      ->envname("PASSAGE_CLAIM_LIMIT_PER_EMAIL")
      ->capture_default_str();
  serve_cmd
      ->add_flag(
          "--trust-proxy", serve_options.trust_proxy,
          "Client IP from the last X-Forwarded-For entry (the one the proxy in front appended)")
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
      ->add_option("--slow-query-limit", serve_options.slow_query_limit,
                   "Point-in-time (as_of) answers taken at once, running or waiting; more get "
                   "503; 0 refuses them")
      ->envname("PASSAGE_SLOW_QUERY_LIMIT")
      ->capture_default_str();
  serve_cmd
      ->add_option("--max-live-clients", serve_options.max_live_clients,
                   "Live-tail (SSE) clients connected at once; more get 503")
      ->envname("PASSAGE_MAX_LIVE_CLIENTS")
      ->capture_default_str();
  serve_cmd
      ->add_option("--events-page-scan", serve_options.events_page_scan,
                   "Log positions one GET /v1/events page examines at most (then it answers "
                   "with what it found and next_from)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{10'000'000}))
      ->envname("PASSAGE_EVENTS_PAGE_SCAN")
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
  serve_cmd
      ->add_option_function<int>(
          "--mail-digest-minutes",
          [&](int m) { serve_options.mail_claim_digest_window = std::chrono::minutes(m); },
          "At most one claim digest mail per invite per this many minutes (default 15)")
      ->envname("PASSAGE_MAIL_DIGEST_MINUTES")
      ->check(CLI::Range(1, 1440));

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
      ->add_flag(
          "--trust-proxy", replica_options.trust_proxy,
          "Client IP from the last X-Forwarded-For entry (the one the proxy in front appended)")
      ->envname("PASSAGE_TRUST_PROXY");

  replay_options replay_opts;
  auto* replay_cmd = cli.add_subcommand(
      "replay", "Rebuild the read models from position 1 of the log (or as of an instant)");
  replay_cmd->add_option("--data-dir", replay_opts.data_dir, "Data folder")
      ->envname("PASSAGE_DATA_DIR")
      ->capture_default_str();
  replay_cmd->add_option("--out", replay_opts.out,
                         "Build into this folder instead of the live one (runs beside serve)");
  replay_cmd->add_option("--as-of", replay_opts.as_of,
                         "Only events recorded at or before this RFC 3339 time (needs --out)");

  std::string usage_dir = "data", usage_invite, usage_as_of;
  auto* usage_cmd = cli.add_subcommand(
      "usage", "An invite's usage as JSON, now or as of an instant (rebuilt from the log)");
  usage_cmd->add_option("--data-dir", usage_dir, "Data folder")
      ->envname("PASSAGE_DATA_DIR")
      ->capture_default_str();
  usage_cmd->add_option("--invite", usage_invite, "The invite (id)")->required();
  usage_cmd->add_option("--as-of", usage_as_of, "RFC 3339 time: the answer given at that instant");

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
  std::string export_as_of;
  export_cmd->add_option("--as-of", export_as_of,
                         "Only events recorded at or before this RFC 3339 time");
  export_cmd->add_option("--type", export_types, "events: comma-separated event types");
  export_cmd->add_option("--output,-o", export_output, "File to write, - for stdout")
      ->capture_default_str();

  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version end here too (status 0); anything else is bad usage.
    return cli.exit(e) == 0 ? 0 : 2;
  }

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
                                    std::tuple{&export_until, &e.until, "--until"},
                                    std::tuple{&export_as_of, &e.as_of, "--as-of"}}) {
      if (text->empty()) continue;
      *slot = parse_rfc3339(*text);
      if (!*slot) {
        std::fprintf(stderr, "passage export: %s must be an RFC 3339 time, got '%s'\n", name,
                     text->c_str());
        return 2;
      }
    }
    if (!export_types.empty()) {
      for (std::string_view rest = export_types;;) {
        auto comma = rest.find(',');
        e.types.emplace_back(rest.substr(0, comma));
        if (comma == std::string_view::npos) break;
        rest = rest.substr(comma + 1);
      }
    }
    if (export_output != "-") e.output_path = export_output;
    e.progress = isatty(fileno(stderr));
    auto r = app::run_export(e);
    if (!r) {
      std::fprintf(stderr, "passage export: %s\n", r.error().message.c_str());
      return r.error().usage ? 2 : 1;
    }
    std::fprintf(stderr, "passage export: %llu rows (up to position %llu) in %.2f s\n",
                 static_cast<unsigned long long>(r->rows),
                 static_cast<unsigned long long>(r->up_to_position), r->seconds);
    return 0;
  }

  if (*replica_cmd) {
    if (!parse_listen("replica", replica_listen, replica_options.address, replica_options.port))
      return 2;
    // Bad usage (status 2), not a failure while running: replica_node::start would refuse
    // it too, but with status 1.
    if (replica_options.kafka_brokers.empty() || replica_options.kafka_brokers == "none") {
      std::fprintf(stderr,
                   "passage replica: --kafka-brokers: a replica needs the brokers the primary "
                   "publishes to, got '%s'\n",
                   replica_options.kafka_brokers.c_str());
      return 2;
    }
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
  if (*replay_cmd) return replay(replay_opts);
  if (*usage_cmd) return usage(usage_dir, usage_invite, usage_as_of);
  return 0;
}
