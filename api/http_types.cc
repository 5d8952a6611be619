#include "api/http_types.h"

#include "api/problem.h"

namespace passage::api {

struct responder::control {
  explicit control(std::shared_ptr<response_sink> s) : sink(std::move(s)) {}
  control(const control&) = delete;
  control& operator=(const control&) = delete;
  ~control() {
    if (!answered.exchange(true) && sink) {
      sink->deliver(
          problem_response(make_problem("internal", "the request was dropped without an answer")));
    }
  }

  std::shared_ptr<response_sink> sink;
  std::atomic<bool> answered{false};
};

responder::responder(std::shared_ptr<response_sink> sink)
    : control_(std::make_shared<control>(std::move(sink))) {}

bool responder::operator()(response res) const {
  if (control_->answered.exchange(true)) return false;
  control_->sink->deliver(std::move(res));
  return true;
}

std::shared_ptr<event_stream> responder::start_stream(response_header header) const {
  if (control_->answered.exchange(true)) return nullptr;
  return control_->sink->open_stream(std::move(header));
}

bool responder::answered() const { return control_->answered.load(); }

responder responder::capture(std::function<void(response)> fn) {
  class function_sink final : public response_sink {
   public:
    explicit function_sink(std::function<void(response)> fn) : fn_(std::move(fn)) {}
    void deliver(response res) override { fn_(std::move(res)); }
    std::shared_ptr<event_stream> open_stream(response_header) override { return nullptr; }

   private:
    std::function<void(response)> fn_;
  };
  return responder(std::make_shared<function_sink>(std::move(fn)));
}

}  // namespace passage::api
