#pragma once
// The benchmarks' command lines: each flag declared with its meaning; `--help` lists them,
// and an unknown flag, a flag without its value or a value that is not a number stops the
// run naming it. (Before, a mistyped or unknown flag such as `--help` silently ran the
// default benchmark: minutes of load and tens of thousands of files on a shared machine.)
//
//   bench_args args("api_bench", "Load generator for a whole node over loopback.");
//   args.value("--seconds", seconds, "length of each run");
//   args.flag("--keep", keep, "keep the data folder");
//   if (int code = args.parse_or_exit_code(argc, argv); code >= 0) return code;

#include <charconv>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace passage::bench {

class bench_args {
 public:
  bench_args(std::string program, std::string summary)
      : program_(std::move(program)), summary_(std::move(summary)) {}

  // A flag with a value: a number (integral or floating) or a string.
  template <class T>
  void value(std::string name, T& out, std::string help) {
    option o{std::move(name), std::move(help), true, {}};
    o.set = [&out, n = o.name](std::string_view text) -> std::optional<std::string> {
      if constexpr (std::is_same_v<T, std::string>) {
        out = std::string(text);
        return std::nullopt;
      } else {
        T parsed{};
        const auto* end = text.data() + text.size();
        auto [ptr, ec] = std::from_chars(text.data(), end, parsed);
        if (ec != std::errc() || ptr != end || text.empty())
          return n + " needs a number, not '" + std::string(text) + "'";
        out = parsed;
        return std::nullopt;
      }
    };
    options_.push_back(std::move(o));
  }

  // A switch without a value: sets `out` to true when given.
  void flag(std::string name, bool& out, std::string help) {
    option o{std::move(name), std::move(help), false, {}};
    o.set = [&out](std::string_view) -> std::optional<std::string> {
      out = true;
      return std::nullopt;
    };
    options_.push_back(std::move(o));
  }

  // What the command line asks for: run, help (usage() is the text), or an error naming
  // what is wrong (then usage() follows it).
  struct outcome {
    enum kind { run, help, error } what = run;
    std::string message;
  };

  outcome parse(int argc, const char* const* argv) const {
    for (int i = 1; i < argc; ++i) {
      const std::string_view arg = argv[i];
      if (arg == "--help" || arg == "-h") return {outcome::help, {}};
      const option* o = find(arg);
      if (!o) return {outcome::error, "unknown argument '" + std::string(arg) + "'"};
      std::string_view text;
      if (o->takes_value) {
        if (i + 1 >= argc) return {outcome::error, o->name + " needs a value"};
        text = argv[++i];
      }
      if (auto wrong = o->set(text)) return {outcome::error, *wrong};
    }
    return {};
  }

  std::string usage() const {
    std::string text = "usage: " + program_ + " [options]\n" + summary_ + "\n";
    for (const auto& o : options_) {
      std::string left = "  " + o.name + (o.takes_value ? " V" : "");
      if (left.size() < 24) left.resize(24, ' ');
      text += left + " " + o.help + "\n";
    }
    return text + "  --help                 this text\n";
  }

  // For main(): -1 to run; otherwise the exit code, having printed the usage (to stdout
  // for --help, 0) or the error and the usage (to stderr, 2).
  int parse_or_exit_code(int argc, const char* const* argv) const {
    const auto got = parse(argc, argv);
    if (got.what == outcome::run) return -1;
    if (got.what == outcome::help) {
      std::fputs(usage().c_str(), stdout);
      return 0;
    }
    std::fprintf(stderr, "%s: %s\n%s", program_.c_str(), got.message.c_str(), usage().c_str());
    return 2;
  }

 private:
  struct option {
    std::string name;
    std::string help;
    bool takes_value;
    std::function<std::optional<std::string>(std::string_view)> set;
  };
  const option* find(std::string_view name) const {
    for (const auto& o : options_)
      if (o.name == name) return &o;
    return nullptr;
  }

  std::string program_;
  std::string summary_;
  std::vector<option> options_;
};

}  // namespace passage::bench
