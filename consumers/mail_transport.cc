#include "consumers/mail_transport.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <mutex>
#include <utility>

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

// What a failed transfer's SMTP reply refused, from libcurl's error buffer: "RCPT failed:
// <code>" (the recipient) or "MAIL failed: <code>" (the sender); empty for anything else.
std::string_view refused_part(CURLcode rc, std::string_view detail) {
  if (rc != CURLE_SEND_ERROR) return {};
  if (detail.starts_with("RCPT failed")) return "recipient";
  if (detail.starts_with("MAIL failed")) return "sender";
  return {};
}

// The last 4xx or 5xx reply line libcurl read from the server in a transfer (through its
// debug callback: the error buffer holds the code only). Kept parsed, never as text.
struct refusal_seen {
  std::optional<smtp_reply> last;
};

int on_curl_debug(CURL*, curl_infotype type, char* data, std::size_t size, void* p) {
  if (type != CURLINFO_HEADER_IN) return 0;
  auto* seen = static_cast<refusal_seen*>(p);
  std::string_view in(data, size);
  while (!in.empty()) {
    const auto end = in.find('\n');
    auto reply = parse_smtp_reply(in.substr(0, end));
    if (reply && (reply->code / 100 == 4 || reply->code / 100 == 5)) seen->last = std::move(reply);
    if (end == std::string_view::npos) break;
    in.remove_prefix(end + 1);
  }
  return 0;
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

  result<void, send_error> send(const mail_message& m, const std::string& wire) override {
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
    refusal_seen seen;
    curl_easy_setopt(curl_, CURLOPT_DEBUGFUNCTION, &on_curl_debug);
    curl_easy_setopt(curl_, CURLOPT_DEBUGDATA, &seen);
    curl_easy_setopt(curl_, CURLOPT_VERBOSE, 1L);  // calls on_curl_debug, prints nothing
    const CURLcode rc = curl_easy_perform(curl_);
    long smtp_code = 0;
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &smtp_code);
    curl_slist_free_all(rcpt);
    if (rc == CURLE_OK) return {};
    // libcurl's texts name the server and the SMTP reply, never the recipient we gave it.
    // A refusal of the recipient's mailbox is for good (refuses_mailbox()); a refused
    // sender, relay or login is the operator's to fix, so retried like a 4xx.
    if (const auto part = refused_part(rc, detail); !part.empty()) {
      smtp_reply reply{static_cast<int>(smtp_code), {}};
      if (seen.last && seen.last->code == reply.code) reply.enhanced = seen.last->enhanced;
      return fail(send_error("the server refused the " + std::string(part) + " (SMTP " +
                                 std::to_string(reply.code) +
                                 (reply.enhanced.empty() ? "" : " " + reply.enhanced) + ")",
                             part == "recipient" && refuses_mailbox(reply)));
    }
    std::string why = std::string(curl_easy_strerror(rc));
    if (smtp_code != 0) why += " (SMTP " + std::to_string(smtp_code) + ")";
    return fail(std::move(why));
  }

  // Without the URL's user and password, if it names them (smtp://user:pass@host): the
  // text goes to /v1/system, which anyone may read, and to the logs.
  std::string describe() const override {
    std::string url = o_.url;
    if (auto scheme = url.find("://"); scheme != std::string::npos) {
      const auto host = scheme + 3;
      const auto end = std::min(url.find_first_of("/?#", host), url.size());
      const auto at = url.substr(0, end).rfind('@');
      if (at != std::string::npos && at >= host) url.erase(host, at + 1 - host);
    }
    return url + (o_.starttls ? " (STARTTLS required)" : "");
  }

 private:
  smtp_options o_;
  CURL* curl_ = nullptr;
};

// <message id without "<", ">", "/">.eml
std::string eml_name(std::string_view message_id) {
  std::string name;
  name.reserve(message_id.size() + 4);
  for (char c : message_id) {
    if (c != '<' && c != '>' && c != '/') name += c;
  }
  return name + ".eml";
}

// <folder>/<eml_name>
std::filesystem::path eml_path(const std::string& folder, std::string_view message_id) {
  return std::filesystem::path(folder) / eml_name(message_id);
}

class eml_transport final : public mail_transport {
 public:
  eml_transport(std::string folder, eml_options o)
      : tmpfile_works_(o.unnamed_files),
        flink_works_(o.link_by_descriptor),
        refuse_flink_(std::move(o.descriptor_link_errno)),
        folder_(std::move(folder)) {}
  ~eml_transport() override {
    if (dir_ >= 0) ::close(dir_);
  }

  // The folder is opened once and every file is made relative to it under its short name:
  // no walk of the folder's path per mail, bar one stat() of it after the copy is there.
  // It is made when missing, and opened (made) again should it be deleted while the node
  // runs. Renamed away (`mv outbox outbox.old && mkdir outbox`), the folder opened still
  // takes the copy: the stat() finds the name now names another folder (or none), so that
  // copy is removed and the mail written again under the name, where discard(), a forget's
  // purge and read_copy() look (SPEC §6: no copy out of their reach).
  result<void, send_error> send(const mail_message& m, const std::string& wire) override {
    return write_copy(m, wire, true);
  }

  // The stat() of the folder's name once for a run of copies (a path walk per mail, ~10 %
  // of the mailer's CPU per welcome mail): confirm_sent() checks it before the mailer
  // records them as sent.
  result<void, send_error> send_unconfirmed(const mail_message& m,
                                            const std::string& wire) override {
    return write_copy(m, wire, false);
  }

  bool confirm_sent() override {
    if (unconfirmed_.empty() && !unconfirmed_lost_) return true;
    if (!unconfirmed_lost_ && dir_ >= 0 && named_as_opened()) {
      unconfirmed_.clear();
      return true;
    }
    // Renamed away or deleted since (or reopened in between, the copies before it removed
    // then): none of them counts; those written in the folder opened now go too (its name
    // may not name it either), and the mailer writes them all again by send().
    if (dir_ >= 0) close_folder();
    unconfirmed_.clear();
    unconfirmed_lost_ = false;  // said now
    return false;
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
    std::ifstream in(eml_path(folder_, message_id), std::ios::binary);
    if (!in) return std::nullopt;
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  std::string describe() const override { return "eml:" + folder_; }

 private:
  // Writes the copy of `m` and, with `check`, makes sure the folder's name still names
  // the folder it went into (see send()); without, leaves that to confirm_sent().
  result<void, send_error> write_copy(const mail_message& m, const std::string& wire, bool check) {
    std::string name = eml_name(m.message_id);
    for (bool again = false;; again = true) {
      if (dir_ < 0) {
        if (auto opened = open_folder(); !opened) return fail(std::move(opened.error()));
      }
      auto written = tmpfile_works_ ? write_unnamed(name, wire) : written::unsupported;
      // A file system without O_TMPFILE, or no /proc to link by.
      if (written == written::unsupported) written = write_then_rename(name, wire);
      if (written == written::yes) {
        if (!check) {
          unconfirmed_.push_back(std::move(name));
          return {};
        }
        if (still_named()) return {};
        unlink_moved(name);
        written = written::folder_gone;
      }
      if (written == written::folder_gone && !again) {
        close_folder();
        continue;
      }
      return fail(std::move(error_));  // folder_gone twice: error_ says why
    }
  }

  // Closes the folder opened (gone, or renamed away): the copies written there unconfirmed
  // are removed first, and the next confirm_sent() says so.
  void close_folder() {
    if (!unconfirmed_.empty()) {
      for (const auto& name : unconfirmed_) unlink_moved(name);
      unconfirmed_.clear();
      unconfirmed_lost_ = true;
    }
    ::close(std::exchange(dir_, -1));
  }

  enum class written {
    yes,
    folder_gone,  // the folder opened is deleted (or replaced): open it again
    unsupported,  // no O_TMPFILE or no /proc: write_then_rename() from now on
    failed,       // this write failed (error_): the mail is retried
  };

  result<void, std::string> open_folder() {
    dir_ = ::open(folder_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir_ < 0) {
      std::error_code ec;
      std::filesystem::create_directories(folder_, ec);
      if (ec) return fail("cannot create " + folder_ + ": " + ec.message());
      dir_ = ::open(folder_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (dir_ < 0) return fail("cannot open " + folder_ + ": " + std::strerror(errno));
    }
    struct stat opened {};
    if (::fstat(dir_, &opened) != 0) {
      const int e = errno;
      ::close(std::exchange(dir_, -1));
      return fail("cannot open " + folder_ + ": " + std::strerror(e));
    }
    dev_ = opened.st_dev;
    ino_ = opened.st_ino;
    return {};
  }

  // Whether the folder's name still names the folder opened. False (error_ set) when it
  // was renamed, or deleted (and maybe made again), since it was opened.
  bool still_named() {
    errno = 0;
    if (named_as_opened()) return true;
    error_ = "cannot write in " + folder_ + ": " +
             (errno != 0 ? std::strerror(errno) : "renamed or replaced while the mail was written");
    return false;
  }

  // Whether the folder's name names the folder opened (its device and inode at open); on
  // false errno is stat()'s when the name names nothing.
  bool named_as_opened() const {
    struct stat named {};
    return ::stat(folder_.c_str(), &named) == 0 && named.st_dev == dev_ && named.st_ino == ino_;
  }

  // Removes the copy `name` just written in the folder opened, which is no longer under
  // the folder's name (renamed away): there neither discard() nor a forget would find it.
  // Gone already (the folder deleted) is fine.
  void unlink_moved(const std::string& name) const {
    if (::unlinkat(dir_, name.c_str(), 0) != 0 && errno != ENOENT) {
      spdlog::error("mailer: cannot delete {} in the folder renamed away from {}: {}", name,
                    folder_, std::strerror(errno));
    }
  }

  // After a failed call in the folder: whether the folder opened is not the one under its
  // name any more (deleted, or deleted and made again). Sets error_ from errno (the failed
  // call's), which it keeps.
  bool folder_gone() {
    const int e = errno;
    struct stat opened {};
    const bool gone = ::fstat(dir_, &opened) != 0 || opened.st_nlink == 0 || !named_as_opened();
    if (gone) error_ = "cannot write in " + folder_ + ": " + std::strerror(e);
    errno = e;
    return gone;
  }

  std::string path_of(std::string_view name) const { return folder_ + "/" + std::string(name); }

  // Writes `wire` into a file without a name (O_TMPFILE) and links it under `name` once
  // complete: a process killed before the link leaves nothing behind (the kernel frees
  // the nameless inode), and the name appears only with the whole text. Cheaper than a
  // temporary name and a rename: one directory entry added instead of one added, one
  // moved and one removed, in an outbox folder of many files. Nothing is fsynced (neither
  // is the rename's file): after a power loss a copy may be there empty.
  // A copy already there (a mail sent again after its ledger entry was lost in a crash)
  // is replaced: the written file is linked under the temporary name and renamed over it.
  written write_unnamed(const std::string& name, const std::string& wire) {
    const int fd = ::openat(dir_, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0) {
      const int e = errno;
      if (folder_gone()) return written::folder_gone;
      // No O_TMPFILE here (an older kernel or a file system without it): renames from now on.
      if (e == EOPNOTSUPP || e == EISDIR || e == EINVAL) {
        tmpfile_works_ = false;
        return written::unsupported;
      }
      error_ = "cannot write in " + folder_ + ": " + std::strerror(e);
      return written::failed;
    }
    const auto r = link_written(fd, name, wire);
    ::close(fd);
    return r;
  }

  // Links the open nameless file `fd` as `name`: by the descriptor itself (AT_EMPTY_PATH),
  // or where the kernel refuses that to a process without CAP_DAC_READ_SEARCH (before
  // Linux 6.10), by its /proc path, from then on.
  bool link_as(int fd, const std::string& name) {
    if (flink_works_) {
      if (const int refused = refuse_flink_ ? refuse_flink_() : 0; refused != 0) {
        errno = refused;
      } else if (::linkat(fd, "", dir_, name.c_str(), AT_EMPTY_PATH) == 0) {
        return true;
      }
      if (errno != ENOENT && errno != EPERM && errno != EACCES && errno != EINVAL) return false;
    }
    char self[48];
    std::snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    if (::linkat(AT_FDCWD, self, dir_, name.c_str(), AT_SYMLINK_FOLLOW) != 0) return false;
    flink_works_ = false;  // refused, and /proc works
    return true;
  }

  written link_written(int fd, const std::string& name, const std::string& wire) {
    if (!write_all(fd, wire)) {
      error_ = "cannot write " + path_of(name) + ": " + std::strerror(errno);
      return written::failed;
    }
    if (link_as(fd, name)) return written::yes;
    if (errno == EEXIST) {
      // Sent again: under the temporary name (a leftover of a crash there goes first), then
      // renamed over the old copy.
      const std::string tmp = name + ".tmp";
      bool linked = link_as(fd, tmp);
      if (!linked && errno == EEXIST && ::unlinkat(dir_, tmp.c_str(), 0) == 0) {
        linked = link_as(fd, tmp);
      }
      if (linked) {
        if (::renameat(dir_, tmp.c_str(), dir_, name.c_str()) == 0) return written::yes;
        const int e = errno;
        ::unlinkat(dir_, tmp.c_str(), 0);
        error_ = "cannot rename " + path_of(tmp) + ": " + std::strerror(e);
        return written::failed;
      }
    }
    const int e = errno;
    if (folder_gone()) return written::folder_gone;
    // No /proc to link by (not mounted, or closed to this process), or a file system
    // without hard links: renames from now on. Any other error (a full disk or quota, an
    // I/O error, a name too long) fails this mail only.
    if (e == ENOENT || e == EPERM || e == EACCES) {
      tmpfile_works_ = false;
      return written::unsupported;
    }
    error_ = "cannot link " + path_of(name) + ": " + std::strerror(e);
    return written::failed;
  }

  // The same through a temporary name, renamed over `name` when complete. A process
  // killed in between leaves `<name>.eml.tmp`, never a partial .eml; the temporary file goes
  // when the write fails, and with the copy when it is discarded (remove_eml_copy).
  written write_then_rename(const std::string& name, const std::string& wire) {
    const std::string tmp = name + ".tmp";
    const int fd = ::openat(dir_, tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
      const int e = errno;
      if (folder_gone()) return written::folder_gone;
      error_ = "cannot write " + path_of(tmp) + ": " + std::strerror(e);
      return written::failed;
    }
    const bool all = write_all(fd, wire);
    const int write_error = errno;
    const bool closed = ::close(fd) == 0;
    const int close_error = errno;
    if (!all || !closed) {
      ::unlinkat(dir_, tmp.c_str(), 0);  // it holds the recipient's address
      error_ =
          "cannot write " + path_of(tmp) + ": " + std::strerror(all ? close_error : write_error);
      return written::failed;
    }
    if (::renameat(dir_, tmp.c_str(), dir_, name.c_str()) != 0) {
      const int e = errno;
      ::unlinkat(dir_, tmp.c_str(), 0);
      error_ = "cannot rename " + path_of(tmp) + ": " + std::strerror(e);
      return written::failed;
    }
    return written::yes;
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
  bool flink_works_ = true;
  std::function<int()> refuse_flink_;  // eml_options::descriptor_link_errno
  int dir_ = -1;                       // the folder (O_PATH), opened by the first send
  dev_t dev_ = 0;                      // its device and inode when opened, to find it renamed away
  ino_t ino_ = 0;
  std::string error_;
  // Copies send_unconfirmed() wrote in the folder opened since the last confirm_sent(),
  // and whether some written before were removed (the folder closed in between).
  std::vector<std::string> unconfirmed_;
  bool unconfirmed_lost_ = false;

  std::string folder_;
};

}  // namespace

std::optional<smtp_reply> parse_smtp_reply(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  auto digits = [](std::string_view t, std::size_t min, std::size_t max) {
    return t.size() >= min && t.size() <= max &&
           std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!digits(line.substr(0, 3), 3, 3) || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
    return std::nullopt;
  }
  smtp_reply r;
  r.code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (line.size() <= 4) return r;
  // "class.subject.detail" after the code: the class is the code's first digit, then 1-3
  // digits and 1-3 digits (RFC 3463 §2, RFC 2034 §4).
  const auto rest = line.substr(4);
  const auto token = rest.substr(0, rest.find(' '));
  const auto first = token.find('.'), second = token.find('.', first + 1);
  if (first == 1 && token[0] == line[0] && second != std::string_view::npos &&
      digits(token.substr(2, second - 2), 1, 3) && digits(token.substr(second + 1), 1, 3)) {
    r.enhanced = std::string(token);
  }
  return r;
}

bool refuses_mailbox(const smtp_reply& r) {
  if (r.code / 100 != 5) return false;
  if (!r.enhanced.empty()) return r.enhanced.starts_with("5.1.");
  return r.code == 550 || r.code == 551 || r.code == 553;
}

std::unique_ptr<mail_transport> make_smtp_transport(const smtp_options& o) {
  return std::make_unique<smtp_transport>(o);
}

std::unique_ptr<mail_transport> make_eml_transport(std::string folder, eml_options o) {
  return std::make_unique<eml_transport>(std::move(folder), std::move(o));
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
