#pragma once
// A real SMTP server for tests: tests/support/smtp_sink.py (aiosmtpd) as a child process
// on a loopback port, writing each accepted message to a folder. It can be killed with
// SIGKILL and started again on the same port and folder.
//
//   smtp_sink sink(dir.sub("inbox"));
//   sink.start();                        // blocks until it listens
//   options.smtp_url = sink.url();
//   auto mails = sink.messages();        // raw RFC 5322 texts, first line X-Envelope-To

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/support/free_port.h"

namespace passage::testing {

class smtp_sink {
 public:
  explicit smtp_sink(std::string folder) : folder_(std::move(folder)), port_(free_loopback_port()) {
    std::filesystem::create_directories(folder_);
  }
  ~smtp_sink() { kill(); }
  smtp_sink(const smtp_sink&) = delete;
  smtp_sink& operator=(const smtp_sink&) = delete;

  // With `die_after`, the server exits by itself in the middle of the transaction that
  // follows `die_after` accepted messages (see smtp_sink.py); wait_exit() reaps it.
  void start(int die_after = -1) {
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      ::close(out[1]);
      const std::string port = std::to_string(port_);
      const std::string die = std::to_string(die_after);
      if (die_after >= 0) {
        ::execl("/usr/bin/python3", "python3", PASSAGE_SMTP_SINK, port.c_str(), folder_.c_str(),
                die.c_str(), static_cast<char*>(nullptr));
      } else {
        ::execl("/usr/bin/python3", "python3", PASSAGE_SMTP_SINK, port.c_str(), folder_.c_str(),
                static_cast<char*>(nullptr));
      }
      ::_exit(127);
    }
    ::close(out[1]);
    std::string line;
    char c;
    while (::read(out[0], &c, 1) == 1 && c != '\n') line += c;
    ::close(out[0]);
    if (line != "ready") {
      kill();
      throw std::runtime_error("smtp_sink.py did not start (python3-aiosmtpd installed?)");
    }
  }

  // Blocks until the server exited by itself.
  void wait_exit() {
    if (pid_ <= 0) return;
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }
  std::uint16_t port() const { return port_; }

  std::vector<std::string> messages() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(folder_)) {
      if (e.path().extension() != ".eml") continue;
      std::ifstream in(e.path(), std::ios::binary);
      std::ostringstream s;
      s << in.rdbuf();
      out.push_back(s.str());
    }
    return out;
  }
  std::size_t count() const {
    std::size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(folder_)) {
      n += e.path().extension() == ".eml";
    }
    return n;
  }

 private:
  std::string folder_;
  std::uint16_t port_;
  pid_t pid_ = -1;
};

}  // namespace passage::testing
