#include "consumers/mail_transport.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
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
  eml_transport(std::string folder, eml_options o)
      : tmpfile_works_(o.unnamed_files), folder_(std::move(folder)) {}

  result<void, std::string> send(const mail_message& m, const std::string& wire) override {
    const std::string final_path = path_of(m.message_id).string();
    // The folder is made once, and again should it be deleted while the node runs.
    auto named = write_unnamed(final_path, wire);
    if (named == unnamed::no_folder) {
      std::error_code ec;
      std::filesystem::create_directories(folder_, ec);
      if (ec) return fail("cannot create " + folder_ + ": " + ec.message());
      named = write_unnamed(final_path, wire);
    }
    if (named == unnamed::written) return {};
    if (named == unnamed::failed) return fail(std::move(unnamed_error_));
    // A file system without O_TMPFILE, or no /proc to link by.
    return write_then_rename(final_path, wire);
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

  enum class unnamed {
    written,
    no_folder,    // the folder is not there (ENOENT)
    unsupported,  // no O_TMPFILE or no /proc: write_then_rename() from now on
    failed,       // this write failed (unnamed_error_): the mail is retried
  };

  // Writes `wire` into a file without a name (O_TMPFILE) and links it under `final_path`
  // once complete: a process killed before the link leaves nothing behind (the kernel
  // frees the nameless inode), and the name appears only with the whole text. Cheaper
  // than a temporary name and a rename: one directory entry added instead of one added,
  // one moved and one removed, in an outbox folder of many files. Nothing is fsynced
  // (neither is the rename's file): after a power loss a copy may be there empty.
  // A copy already there (a mail sent again after its ledger entry was lost in a crash)
  // is replaced: the written file is linked under the temporary name and renamed over it.
  unnamed write_unnamed(const std::string& final_path, const std::string& wire) {
    if (!tmpfile_works_) return unnamed::unsupported;
    const int fd = ::open(folder_.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0) {
      const int e = errno;
      if (e == ENOENT) return unnamed::no_folder;
      // No O_TMPFILE here (an older kernel or a file system without it): renames from now on.
      if (e == EOPNOTSUPP || e == EISDIR || e == EINVAL) {
        tmpfile_works_ = false;
        return unnamed::unsupported;
      }
      unnamed_error_ = "cannot write in " + folder_ + ": " + std::strerror(e);
      return unnamed::failed;
    }
    const auto r = link_written(fd, final_path, wire);
    ::close(fd);
    return r;
  }

  unnamed link_written(int fd, const std::string& final_path, const std::string& wire) {
    if (!write_all(fd, wire)) {
      unnamed_error_ = "cannot write " + final_path + ": " + std::strerror(errno);
      return unnamed::failed;
    }
    // linkat() of an open file by its /proc path (AT_EMPTY_PATH would need a privilege).
    const std::string self = "/proc/self/fd/" + std::to_string(fd);
    auto link_as = [&](const std::string& path) {
      return ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) == 0;
    };
    if (link_as(final_path)) return unnamed::written;
    if (errno == EEXIST) {
      // Sent again: under the temporary name (a leftover of a crash there goes first), then
      // renamed over the old copy.
      const std::string tmp = final_path + ".tmp";
      bool linked = link_as(tmp);
      if (!linked && errno == EEXIST && ::unlink(tmp.c_str()) == 0) linked = link_as(tmp);
      if (linked) {
        if (::rename(tmp.c_str(), final_path.c_str()) == 0) return unnamed::written;
        const int e = errno;
        ::unlink(tmp.c_str());
        unnamed_error_ = "cannot rename " + tmp + ": " + std::strerror(e);
        return unnamed::failed;
      }
    }
    const int e = errno;
    if (e == ENOENT && ::access(folder_.c_str(), F_OK) != 0) return unnamed::no_folder;
    // No /proc to link by (not mounted, or closed to this process), or a file system
    // without hard links: renames from now on. Any other error (a full disk or quota, an
    // I/O error, a name too long) fails this mail only.
    if (e == ENOENT || e == EPERM || e == EACCES) {
      tmpfile_works_ = false;
      return unnamed::unsupported;
    }
    unnamed_error_ = "cannot link " + final_path + ": " + std::strerror(e);
    return unnamed::failed;
  }

  // The same through a temporary name, renamed over `final_path` when complete. A process
  // killed in between leaves `<name>.eml.tmp`, never a partial .eml; the temporary file goes
  // when the write fails, and with the copy when it is discarded (remove_eml_copy).
  result<void, std::string> write_then_rename(const std::string& final_path,
                                              const std::string& wire) {
    std::error_code ec;
    std::filesystem::create_directories(folder_, ec);
    if (ec) return fail("cannot create " + folder_ + ": " + ec.message());
    const std::string tmp = final_path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) return fail("cannot write " + tmp + ": " + std::strerror(errno));
    const bool written = write_all(fd, wire);
    const int write_error = errno;
    const bool closed = ::close(fd) == 0;
    const int close_error = errno;
    if (!written || !closed) {
      ::unlink(tmp.c_str());  // it holds the recipient's address
      return fail("cannot write " + tmp + ": " +
                  std::strerror(written ? close_error : write_error));
    }
    if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
      const int e = errno;
      ::unlink(tmp.c_str());
      return fail("cannot rename " + tmp + ": " + std::strerror(e));
    }
    return {};
  }

  static bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::write(fd, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) errno = ENOSPC;  // not expected of a regular file; not a success either
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // send() runs on one thread at a time (mail_transport).
  bool tmpfile_works_ = true;
  std::string unnamed_error_;

  std::string folder_;
};

}  // namespace

std::unique_ptr<mail_transport> make_smtp_transport(const smtp_options& o) {
  return std::make_unique<smtp_transport>(o);
}

std::unique_ptr<mail_transport> make_eml_transport(std::string folder, eml_options o) {
  return std::make_unique<eml_transport>(std::move(folder), o);
}

bool remove_eml_copy(const std::string& folder, std::string_view message_id) {
  const auto path = eml_path(folder, message_id);
  bool gone = true;
  // The copy and the temporary file a writer killed midway may have left (same text).
  for (const auto& p : {path, std::filesystem::path(path.string() + ".tmp")}) {
    std::error_code ec;
    std::filesystem::remove(p, ec);  // no error when it (or the folder) is gone already
    if (ec) spdlog::error("mailer: cannot delete {}: {}", p.string(), ec.message());
    gone = gone && !ec;
  }
  return gone;
}

}  // namespace passage::consumers
