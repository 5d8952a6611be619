#include "consumers/errors.h"

namespace passage::consumers {

namespace {

class errors_category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "passage.consumers"; }
  std::string message(int c) const override {
    switch (static_cast<errc>(c)) {
      case errc::invalid_config:
        return "invalid configuration";
      case errc::broker:
        return "embedded broker error";
      case errc::kafka:
        return "Kafka client error";
      case errc::checkpoint:
        return "checkpoint store error";
      case errc::store:
        return "event store read error";
      case errc::already_running:
        return "already running";
      case errc::apply:
        return "replica apply error";
    }
    return "unknown consumers error";
  }
};

}  // namespace

const std::error_category& error_category() {
  static const errors_category category;
  return category;
}

}  // namespace passage::consumers
