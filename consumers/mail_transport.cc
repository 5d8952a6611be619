#include "consumers/mail_transport.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>

namespace passage::consumers {
namespace {

void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Angle-bracket address for MAIL FROM: the part inside <...> of "Name <addr>", else all.
std::string envelope_address(const std::string& from) {
  auto open = from.rfind('<');
  auto close = from.rfind('>');
  if (open != std::string::npos && close != std::string::npos && close > open) {
    return from.substr(open, close - open + 1);
  }
  return "<" + from + ">";
}

class smtp_transport final : public mail_transport {
 public:
  explicit smtp_transport(smtp_options o) : o_(std::move(o)) {
    init_curl_once();
    curl_ = curl_easy_init();
  }
  ~smtp_transport() override {
    if (curl_) curl_easy_cleanup(curl_);
  }

  result<void, std::string> send(const mail_message& m, const std::string& wire) override {
    if (!curl_) return fail(std::string("libcurl could not start"));
    struct reader {
      const std::string* data;
      std::size_t offset = 0;
    } r{&wire};
    auto read = +[](char* buf, std::size_t size, std::size_t n, void* p) -> std::size_t {
      auto* rd = static_cast<reader*>(p);
      const std::size_t room = size * n;
      const std::size_t left = rd->data->size() - rd->offset;
      const std::size_t take = std::min(room, left);
      std::memcpy(buf, rd->data->data() + rd->offset, take);
      rd->offset += take;
      return take;
    };
    const std::string from = envelope_address(m.from);
    const std::string to = "<" + m.to + ">";
    curl_slist* rcpt = curl_slist_append(nullptr, to.c_str());
    curl_easy_reset(curl_);
    curl_easy_setopt(curl_, CURLOPT_URL, o_.url.c_str());
    curl_easy_setopt(curl_, CURLOPT_MAIL_FROM, from.c_str());
    curl_easy_setopt(curl_, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(curl_, CURLOPT_READFUNCTION, read);
    curl_easy_setopt(curl_, CURLOPT_READDATA, &r);
    curl_easy_setopt(curl_, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(o_.connect_timeout.count()));
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, static_cast<long>(o_.timeout.count()));
    if (o_.starttls) curl_easy_setopt(curl_, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL));
    if (!o_.verify_peer) {
      curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (!o_.username.empty()) {
      curl_easy_setopt(curl_, CURLOPT_USERNAME, o_.username.c_str());
      curl_easy_setopt(curl_, CURLOPT_PASSWORD, o_.password.c_str());
    }
    char detail[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, detail);
    const CURLcode rc = curl_easy_perform(curl_);
    long smtp_code = 0;
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &smtp_code);
    curl_slist_free_all(rcpt);
    if (rc == CURLE_OK) return {};
    // libcurl's texts name the server and the SMTP reply, never the recipient we gave it.
    std::string why = std::string(curl_easy_strerror(rc));
    if (smtp_code != 0) why += " (SMTP " + std::to_string(smtp_code) + ")";
    return fail(std::move(why));
  }

  std::string describe() const override {
    return o_.url + (o_.starttls ? " (STARTTLS required)" : "");
  }

 private:
  smtp_options o_;
  CURL* curl_ = nullptr;
};

// <folder>/<message id without "<", ">", "/">.eml
std::filesystem::path eml_path(const std::string& folder, std::string_view message_id) {
  std::string name(message_id);
  std::erase_if(name, [](char c) { return c == '<' || c == '>' || c == '/'; });
  return std::filesystem::path(folder) / (name + ".eml");
}

class eml_transport final : public mail_transport {
 public:
  explicit eml_transport(std::string folder) : folder_(std::move(folder)) {}

  result<void, std::string> send(const mail_message& m, const std::string& wire) override {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::create_directories(folder_, ec);
    if (ec) return fail("cannot create " + folder_ + ": " + ec.message());
    const fs::path final_path = path_of(m.message_id);
    fs::path tmp = final_path;
    tmp += ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << wire;
      out.flush();
      if (!out) return fail("cannot write " + tmp.string());
    }
    fs::rename(tmp, final_path, ec);
    if (ec) return fail("cannot rename " + tmp.string() + ": " + ec.message());
    return {};
  }

  bool discard(std::string_view message_id) override {
    return remove_eml_copy(folder_, message_id);
  }

  bool keeps_copies() const override { return true; }

  std::vector<std::string> kept_copies() const override {
    std::vector<std::string> ids;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(folder_, ec), end; !ec && it != end;
         it.increment(ec)) {
      if (it->path().extension() == ".eml") ids.push_back("<" + it->path().stem().string() + ">");
    }
    return ids;
  }

  std::optional<std::string> read_copy(std::string_view message_id) const override {
    std::ifstream in(path_of(message_id), std::ios::binary);
    if (!in) return std::nullopt;
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  std::string describe() const override { return "eml:" + folder_; }

 private:
  std::filesystem::path path_of(std::string_view message_id) const {
    return eml_path(folder_, message_id);
  }

  std::string folder_;
};

}  // namespace

std::unique_ptr<mail_transport> make_smtp_transport(const smtp_options& o) {
  return std::make_unique<smtp_transport>(o);
}

std::unique_ptr<mail_transport> make_eml_transport(std::string folder) {
  return std::make_unique<eml_transport>(std::move(folder));
}

bool remove_eml_copy(const std::string& folder, std::string_view message_id) {
  const auto path = eml_path(folder, message_id);
  std::error_code ec;
  std::filesystem::remove(path, ec);  // no error when it (or the folder) is gone already
  if (ec) spdlog::error("mailer: cannot delete {}: {}", path.string(), ec.message());
  return !ec;
}

}  // namespace passage::consumers
