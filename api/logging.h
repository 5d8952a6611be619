#pragma once
// Structured logs: one JSON object per line on stderr, with "time" (RFC 3339
// UTC), "level", "msg" and any further fields. Plain spdlog calls on such a
// logger come out as JSON too (the text becomes "msg").
//
//   auto log = make_json_logger();                 // stderr
//   spdlog::set_default_logger(log);
//   log_json(*log, spdlog::level::info, "listening", {{"port", 8080}});
//   // {"time":"2026-11-20T09:00:00.123456Z","level":"info","msg":"listening","port":8080}
//
// Client IPs never appear in clear: log client_tag(ip), a truncated keyed hash.

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/logger.h>
#include <nlohmann/json.hpp>

namespace passage::api {

// A logger whose every line is a JSON object. `sink` defaults to a
// thread-safe stderr sink. The logger is thread-safe.
std::shared_ptr<spdlog::logger> make_json_logger(std::string name = "passage",
                                                 spdlog::sink_ptr sink = nullptr);

// Logs `msg` with `fields` (a JSON object; other values go under "fields") as
// members of the line. Fields named time, level or msg are renamed with a
// leading underscore. Cheap when `level` is disabled.
void log_json(spdlog::logger& logger, spdlog::level::level_enum level, std::string_view msg,
              const nlohmann::json& fields = nlohmann::json::object());

// A 12-hex-digit keyed hash of a client IP: stable for the life of the
// process, so one client's lines can be followed, but not reversible.
std::string client_tag(std::string_view ip);

}  // namespace passage::api
