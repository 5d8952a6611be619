#pragma once
// Where rendered mails go: an SMTP server through libcurl (smtp:// with optional
// STARTTLS, smtps://, authentication), or .eml files in a folder when no SMTP server is
// configured, so a default node still shows what it would send. libcurl types never
// leave mail_transport.cc.
//
//   auto t = make_smtp_transport({.url = "smtp://127.0.0.1:2525"});
//   if (auto sent = t->send(message, wire); !sent) retry_later(sent.error());

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "consumers/mail_message.h"

namespace passage::consumers {

// Why a mail was not delivered. Its text never contains the recipient's address.
struct send_error {
  send_error() = default;
  send_error(std::string why, bool refused = false)  // NOLINT: implicit, as a plain text
      : text(std::move(why)), permanent(refused) {}
  std::string text;
  // The server refused this recipient's mailbox for good (refuses_mailbox(): no such
  // mailbox, a bad address): sending again would be refused again, so the mailer records
  // the failure without retrying. Anything else (no connection, a timeout, a 4xx reply, a
  // refused sender or login, a refused relay or policy, which the operator can fix) is
  // worth retrying.
  bool permanent = false;
};

// An SMTP server's reply, as far as the mailer acts on it: its code (550) and its enhanced
// status code (RFC 3463: "5.1.1"; empty when the server gives none). Never the reply's
// text, which may hold the recipient's address.
struct smtp_reply {
  int code = 0;
  std::string enhanced;
};
// The code and enhanced code of one reply line ("550 5.1.1 No such user", "250-SIZE");
// nullopt when it does not start with a three-digit code.
std::optional<smtp_reply> parse_smtp_reply(std::string_view line);
// Whether `r`, a refusal of RCPT TO, says the mailbox itself is bad (RFC 5321 §4.2.2-3,
// RFC 3463 §3.2): with an enhanced code, a 5.1.x one (bad mailbox, domain or address
// syntax, moved); without, 550 (no such mailbox), 551 (user not local) or 553 (mailbox
// name not allowed). Not 530 (authentication required), 554 or a 5.7.x policy refusal
// ("550 5.7.1 Relaying denied"): the server's configuration or ours, not the address.
bool refuses_mailbox(const smtp_reply& r);

// Used by one thread at a time (the mailer's).
class mail_transport {
 public:
  virtual ~mail_transport() = default;
  // Delivers `wire` (the RFC 5322 text of `m`) to m.to.
  virtual result<void, send_error> send(const mail_message& m, const std::string& wire) = 0;
  // As send(), but a check that holds for every copy written so far may be left to the
  // next confirm_sent(), made once for many mails (the mailer's runs of welcome mails): a
  // mail sent so counts as sent only once confirm_sent() returned true. Default: send().
  virtual result<void, send_error> send_unconfirmed(const mail_message& m,
                                                    const std::string& wire) {
    return send(m, wire);
  }
  // Whether every copy send_unconfirmed() wrote since the last call is where send() would
  // have put it (where discard() and a forget look). False: they may not be (the .eml
  // folder was renamed away or deleted since), were removed, and their mails must be sent
  // again. Default: true (nothing left unconfirmed).
  virtual bool confirm_sent() { return true; }
  // Removes what this transport kept of the sent mail `message_id` (the .eml file), when
  // someone it names is forgotten (SPEC §6). Mail handed to an SMTP server is out of
  // reach: nothing to do. Default: nothing. Unlike send(), may run on any thread, also
  // while a send of another message is running. False when a copy is still there (removing
  // it failed); a copy already gone (deleted by hand) is not a failure.
  virtual bool discard(std::string_view message_id) {
    (void)message_id;
    return true;
  }
  // Whether sent mails stay here (so discard() has something to remove and the mailer
  // indexes them for forgetting). Default: false.
  virtual bool keeps_copies() const { return false; }
  // The message ids ("<…@passage>") of the copies kept, and the text of one of them
  // (nullopt: gone): for the mailer's one-time indexing of an outbox written before it
  // kept an index (mailer.h, "Upgrade"). Defaults: none.
  virtual std::vector<std::string> kept_copies() const { return {}; }
  virtual std::optional<std::string> read_copy(std::string_view message_id) const {
    (void)message_id;
    return std::nullopt;
  }
  // "smtp://host:port" or "eml:<folder>", for logs and /v1/system.
  virtual std::string describe() const = 0;
};

struct smtp_options {
  // smtp://host[:port] (plain, or STARTTLS with `starttls`) or smtps://host[:port]. Required.
  std::string url;
  // Require STARTTLS on smtp:// (refuse to send in clear). Default: false.
  bool starttls = false;
  // SMTP AUTH credentials; empty: no authentication. Default: none.
  std::string username;
  std::string password;
  // Verify the server's certificate and name (TLS). Default: true.
  bool verify_peer = true;
  // Connect and whole-transfer timeouts. Defaults: 10 s, 60 s.
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds timeout{60'000};
};

// Keeps one libcurl handle, so consecutive mails reuse the SMTP connection.
std::unique_ptr<mail_transport> make_smtp_transport(const smtp_options& o);
struct eml_options {
  // Write each copy into a file without a name (O_TMPFILE) and link it under its name
  // once complete. false: through `<name>.eml.tmp` and a rename, as where the folder's
  // file system has no O_TMPFILE or /proc is missing (found at the first send). Default: true.
  bool unnamed_files = true;
  // Link a complete unnamed file by its descriptor (linkat AT_EMPTY_PATH). false: by its
  // /proc/self/fd path, as where the kernel refuses the former to a process without
  // CAP_DAC_READ_SEARCH (before Linux 6.10; found at the first send). Default: true.
  bool link_by_descriptor = true;
  // Tests: called before each link by descriptor; a non-zero errno makes that link fail
  // with it, as an older kernel's refusal would (ENOENT, EPERM), to exercise the /proc
  // fallback. Default: none.
  std::function<int()> descriptor_link_errno;
};
// Writes <folder>/<message id>.eml so that the name appears only with the whole text: a
// process killed midway leaves no partial .eml (at most a `<name>.eml.tmp` of the rename
// path, deleted with the copy). Nothing is fsynced, so after a power loss (or an OS
// crash) a copy the ledger records as sent may be there empty or missing. A copy already
// there (a mail sent again) is replaced by a rename. A write that fails leaves no file.
// discard() deletes the copy (remove_eml_copy). The folder is opened at the first send
// and its files are made relative to it; after each copy one stat() of the folder's name
// checks it still names that folder, and when it was deleted or renamed away (maybe with
// a new folder made under the name) the copy is removed from the old one and written
// again under the name: every copy a send reports is where discard() and a forget look.
// send_unconfirmed() leaves that stat() to confirm_sent(), one for all the copies written
// since: the folder still named, they are in place; else they are removed (false).
std::unique_ptr<mail_transport> make_eml_transport(std::string folder, eml_options o = {});
// Deletes the .eml copy of `message_id` an eml transport wrote in `folder`, whatever
// transport runs now: the mailer's purge uses it too, as a node that ran with .eml and
// then switched to SMTP still has its copies there (SPEC §6). Its `<name>.eml.tmp`, left by
// a writer killed midway, goes too. False (logged) when a file is still there; one already
// gone, or a folder that does not exist, is not a failure.
bool remove_eml_copy(const std::string& folder, std::string_view message_id);

}  // namespace passage::consumers
