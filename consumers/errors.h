#pragma once
// Errors of the consumers module (Kafka relay, embedded broker), as values.
// librdkafka's own codes stay inside the module's .cc files; their text is kept
// in `message`.

#include <string>
#include <system_error>

#include "common/result.h"

namespace passage::consumers {

enum class errc {
  invalid_config = 1,  // an option or a librdkafka override was refused
  broker,              // the embedded broker could not start or be changed
  kafka,               // the Kafka client failed (fatal producer error, delivery failure)
  checkpoint,          // the checkpoint store could not be opened, read or written
  store,               // reading the event log failed
  already_running,     // start() on a running relay
  apply,               // a replica could not turn a message into its read models
};

const std::error_category& error_category();
inline std::error_code make_error_code(errc e) { return {static_cast<int>(e), error_category()}; }

struct consumer_error {
  errc code;
  std::string message;

  std::error_code error_code() const { return make_error_code(code); }
};

}  // namespace passage::consumers

template <>
struct std::is_error_code_enum<passage::consumers::errc> : std::true_type {};
