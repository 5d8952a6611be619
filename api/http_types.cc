#include "api/http_types.h"

#include "api/problem.h"

namespace passage::api {

struct responder::control {
  explicit control(std::shared_ptr<response_sink> s) : sink(std::move(s)) {}
  control(const control&) = delete;
  control& operator=(const control&) = delete;
  ~control() {
    if (take(open, answered) && sink) {
      sink->deliver(
          problem_response(make_problem("internal", "the request was dropped without an answer")));
    }
  }
  // Moves the state from `from` to `to`; false if it was not `from`.
  bool take(int from, int to) { return state.compare_exchange_strong(from, to); }

  static constexpr int open = 0, provisional = 1, answered = 2;
  std::shared_ptr<response_sink> sink;
  std::atomic<int> state{open};
};

responder::responder(std::shared_ptr<response_sink> sink)
    : control_(std::make_shared<control>(std::move(sink))) {}

bool responder::operator()(response res) const {
  if (control_->take(control::open, control::answered)) {
    control_->sink->deliver(std::move(res));
    return true;
  }
  if (control_->take(control::provisional, control::answered)) {
    control_->sink->settle(std::move(res));
  }
  return false;
}

bool responder::provisionally(response res) const {
  if (!control_->take(control::open, control::provisional)) return false;
  control_->sink->deliver_provisional(std::move(res));
  return true;
}

std::shared_ptr<event_stream> responder::start_stream(response_header header) const {
  if (!control_->take(control::open, control::answered)) return nullptr;
  return control_->sink->open_stream(std::move(header));
}

bool responder::keeps_settled() const { return control_->sink && control_->sink->keeps_settled(); }

bool responder::answered() const { return control_->state.load() != control::open; }

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
