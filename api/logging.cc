#include "api/logging.h"

#include <chrono>

#include <spdlog/formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "api/keyed_hash.h"
#include "common/time_format.h"

namespace passage::api {
namespace {

// Marks a payload that log_json() built: the JSON members after "level",
// without the surrounding braces.
constexpr char structured_marker = '\x1e';

class json_formatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    auto t = std::chrono::time_point_cast<std::chrono::microseconds>(msg.time);
    std::string head = R"({"time":")" + format_rfc3339(timestamp{t.time_since_epoch()}) +
                       R"(","level":")" +
                       std::string(spdlog::level::to_string_view(msg.level).data(),
                                   spdlog::level::to_string_view(msg.level).size()) +
                       "\",";
    dest.append(head.data(), head.data() + head.size());
    std::string_view payload(msg.payload.data(), msg.payload.size());
    if (!payload.empty() && payload.front() == structured_marker) {
      payload.remove_prefix(1);
      dest.append(payload.data(), payload.data() + payload.size());
    } else {
      std::string text =
          R"("msg":)" + nlohmann::json(std::string(payload))
                            .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      dest.append(text.data(), text.data() + text.size());
    }
    dest.push_back('}');
    dest.push_back('\n');
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<json_formatter>();
  }
};

}  // namespace

std::shared_ptr<spdlog::logger> make_json_logger(std::string name, spdlog::sink_ptr sink) {
  if (!sink) sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>(std::move(name), std::move(sink));
  logger->set_formatter(std::make_unique<json_formatter>());
  return logger;
}

void log_json(spdlog::logger& logger, spdlog::level::level_enum level, std::string_view msg,
              const nlohmann::json& fields) {
  if (!logger.should_log(level)) return;
  constexpr auto replace = nlohmann::json::error_handler_t::replace;
  std::string payload(1, structured_marker);
  payload += R"("msg":)";
  payload += nlohmann::json(std::string(msg)).dump(-1, ' ', false, replace);
  auto add = [&](const std::string& key, const nlohmann::json& value) {
    payload += ',';
    payload += nlohmann::json(key).dump(-1, ' ', false, replace);
    payload += ':';
    payload += value.dump(-1, ' ', false, replace);
  };
  if (fields.is_object()) {
    for (const auto& [k, v] : fields.items()) {
      add(k == "time" || k == "level" || k == "msg" ? "_" + k : k, v);
    }
  } else if (!fields.is_null()) {
    add("fields", fields);
  }
  logger.log(level, spdlog::string_view_t(payload.data(), payload.size()));
}

std::string client_tag(std::string_view ip) {
  static const keyed_hasher hasher;
  return hasher.hex(ip, 12);
}

}  // namespace passage::api
