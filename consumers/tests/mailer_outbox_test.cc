// The .eml outbox and the welcome mails' per-batch shortcuts, over a real event store in a
// temporary folder: a copy appears whole under its name or not at all, also when the
// writer dies midway; a welcome mail finds the registered first name in its batch as it
// would in the log; a LearnerForgotten read with the registration still purges the
// address's copies.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <variant>
#include <vector>

#include "common/encoding.h"
#include "consumers/mail_transport.h"
#include "consumers/mailer.h"
#include "consumers/tests/failing_reads.h"
#include "domain/events.h"
#include "domain/password.h"
#include "domain/streams.h"
#include "eventstore/event_codec.h"
#include "eventstore/key_store.h"
#include "tests/support/temp_dir.h"

namespace passage::consumers {
namespace {

namespace d = passage::domain;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The files of `folder` by name (none when it does not exist).
std::vector<std::string> names_in(const std::string& folder) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec))
    names.push_back(it->path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

mail_message message(int i) {
  mail_message m;
  m.from = "Passage <no-reply@passage.invalid>";
  m.to = "ada@example.com";
  m.subject = "hello";
  m.message_id = "<mail-" + std::to_string(i) + "@passage>";
  return m;
}

bool has_temporary_name(const std::vector<std::string>& names) {
  return std::any_of(names.begin(), names.end(),
                     [](const std::string& n) { return n.ends_with(".tmp"); });
}

// Whether `folder`'s file system takes O_TMPFILE (overlayfs before Linux 6.6 does not).
bool tmpfile_supported(const std::string& folder) {
  const int fd = ::open(folder.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// Every atomic-copy test runs on the three paths: unnamed files (O_TMPFILE) linked by
// their descriptor, the same linked by their /proc path (as where the kernel refuses the
// former), and, as where the file system has no O_TMPFILE, a temporary name and a rename.
enum class eml_path_kind { by_descriptor, by_proc, renamed };

class eml_outbox : public ::testing::TestWithParam<eml_path_kind> {
 protected:
  void SetUp() override {
    fs::create_directories(folder_);
    if (unnamed() && !tmpfile_supported(folder_)) {
      GTEST_SKIP() << "no O_TMPFILE on this file system";
    }
    fs::remove(folder_);
  }
  bool unnamed() const { return GetParam() != eml_path_kind::renamed; }
  std::unique_ptr<mail_transport> transport() {
    return make_eml_transport(folder_,
                              {.unnamed_files = unnamed(),
                               .link_by_descriptor = GetParam() == eml_path_kind::by_descriptor});
  }

  passage::testing::temp_dir dir_;
  const std::string folder_ = dir_.sub("outbox");  // not there: the first send makes it
};

INSTANTIATE_TEST_SUITE_P(paths, eml_outbox,
                         ::testing::Values(eml_path_kind::by_descriptor, eml_path_kind::by_proc,
                                           eml_path_kind::renamed),
                         [](const auto& p) {
                           switch (p.param) {
                             case eml_path_kind::by_descriptor:
                               return "unnamed";
                             case eml_path_kind::by_proc:
                               return "unnamed_by_proc";
                             case eml_path_kind::renamed:
                               break;
                           }
                           return "renamed";
                         });

TEST_P(eml_outbox, ACopyIsWrittenWholeAndASecondSendReplacesIt) {
  const std::string& folder = folder_;
  auto t = transport();
  ASSERT_TRUE(t->send(message(1), "first text\r\n"));
  EXPECT_EQ(names_in(folder), (std::vector<std::string>{"mail-1@passage.eml"}));
  EXPECT_EQ(read_file(folder + "/mail-1@passage.eml"), "first text\r\n");

  // Sent again (its ledger entry was lost in a crash): one copy, the new text.
  ASSERT_TRUE(t->send(message(1), "second text\r\n"));
  EXPECT_EQ(names_in(folder), (std::vector<std::string>{"mail-1@passage.eml"}));
  EXPECT_EQ(read_file(folder + "/mail-1@passage.eml"), "second text\r\n");

  // And again over the temporary file a writer killed midway left.
  { std::ofstream(folder + "/mail-1@passage.eml.tmp") << "partial"; }
  ASSERT_TRUE(t->send(message(1), "third text\r\n"));
  EXPECT_EQ(names_in(folder), (std::vector<std::string>{"mail-1@passage.eml"}));
  EXPECT_EQ(read_file(folder + "/mail-1@passage.eml"), "third text\r\n");

  // The folder deleted while the node runs: made again.
  fs::remove_all(folder);
  ASSERT_TRUE(t->send(message(2), "fourth text\r\n"));
  EXPECT_EQ(names_in(folder), (std::vector<std::string>{"mail-2@passage.eml"}));
  EXPECT_EQ(read_file(folder + "/mail-2@passage.eml"), "fourth text\r\n");
  EXPECT_EQ(t->kept_copies(), (std::vector<std::string>{"<mail-2@passage>"}));

  // Deleted and made again by someone else (the transport opened the deleted one): the
  // copies go into the new folder, under its name.
  fs::remove_all(folder);
  fs::create_directories(folder);
  ASSERT_TRUE(t->send(message(3), "fifth text\r\n"));
  EXPECT_EQ(names_in(folder), (std::vector<std::string>{"mail-3@passage.eml"}));
  EXPECT_EQ(read_file(folder + "/mail-3@passage.eml"), "fifth text\r\n");
}

// The folder renamed away while the node runs (`mv outbox outbox.old && mkdir outbox`,
// or without the mkdir): the copies go under the folder's name, where discard() and a
// forget look, and none is left in the folder moved away (SPEC §6).
TEST_P(eml_outbox, ACopyGoesUnderTheFolderNameAfterTheFolderIsRenamedAway) {
  const std::string& folder = folder_;
  auto t = transport();
  ASSERT_TRUE(t->send(message(1), "first text\r\n"));
  fs::rename(folder, folder + ".old");
  fs::create_directories(folder);
  ASSERT_TRUE(t->send(message(2), "second text\r\n"));
  EXPECT_EQ(names_in(folder + ".old"), (std::vector<std::string>{"mail-1@passage.eml"}));
  EXPECT_EQ(names_in(folder), (std::vector<std::string>{"mail-2@passage.eml"}));
  EXPECT_EQ(t->read_copy("<mail-2@passage>"), "second text\r\n");
  EXPECT_EQ(t->kept_copies(), (std::vector<std::string>{"<mail-2@passage>"}));
  ASSERT_TRUE(t->send(message(3), "third text\r\n"));  // from the new folder on
  EXPECT_TRUE(t->discard("<mail-2@passage>"));
  EXPECT_EQ(names_in(folder), (std::vector<std::string>{"mail-3@passage.eml"}));

  // Renamed away with nothing made under the name: made again.
  fs::rename(folder, folder + ".older");
  ASSERT_TRUE(t->send(message(4), "fourth text\r\n"));
  EXPECT_EQ(names_in(folder + ".older"), (std::vector<std::string>{"mail-3@passage.eml"}));
  EXPECT_EQ(names_in(folder), (std::vector<std::string>{"mail-4@passage.eml"}));
  EXPECT_EQ(read_file(folder + "/mail-4@passage.eml"), "fourth text\r\n");
}

// send_unconfirmed() leaves the check of the folder's name to confirm_sent(), once for
// all the copies written since: in place, they stay; the folder renamed away (or deleted)
// meanwhile, they are all removed and confirm_sent() says so (the mailer sends them again),
// so none stays where discard() and a forget do not look (SPEC §6).
TEST_P(eml_outbox, UnconfirmedCopiesAreCheckedOnceAndRemovedWhenTheFolderMoved) {
  const std::string& folder = folder_;
  auto t = transport();
  EXPECT_TRUE(t->confirm_sent()) << "nothing to confirm";
  ASSERT_TRUE(t->send_unconfirmed(message(1), "first text\r\n"));
  ASSERT_TRUE(t->send_unconfirmed(message(2), "second text\r\n"));
  EXPECT_TRUE(t->confirm_sent());
  EXPECT_EQ(names_in(folder),
            (std::vector<std::string>{"mail-1@passage.eml", "mail-2@passage.eml"}));
  EXPECT_EQ(read_file(folder + "/mail-2@passage.eml"), "second text\r\n");

  // Renamed away (and made again) between two unconfirmed copies: both go.
  ASSERT_TRUE(t->send_unconfirmed(message(3), "third text\r\n"));
  fs::rename(folder, folder + ".old");
  fs::create_directories(folder);
  ASSERT_TRUE(t->send_unconfirmed(message(4), "fourth text\r\n"));
  EXPECT_FALSE(t->confirm_sent());
  EXPECT_EQ(names_in(folder + ".old"),
            (std::vector<std::string>{"mail-1@passage.eml", "mail-2@passage.eml"}));
  EXPECT_TRUE(names_in(folder).empty());
  ASSERT_TRUE(t->send(message(3), "third text\r\n"));  // sent again, under the name
  EXPECT_TRUE(t->confirm_sent()) << "nothing left to confirm";
  EXPECT_EQ(names_in(folder), (std::vector<std::string>{"mail-3@passage.eml"}));

  // Deleted between two: the first is lost with the folder, the second (written in the
  // folder made again) is removed too, and confirm_sent() says they must go again.
  ASSERT_TRUE(t->send_unconfirmed(message(5), "fifth text\r\n"));
  fs::remove_all(folder);
  ASSERT_TRUE(t->send_unconfirmed(message(6), "sixth text\r\n"));
  EXPECT_FALSE(t->confirm_sent());
  EXPECT_TRUE(names_in(folder).empty());
  ASSERT_TRUE(t->send_unconfirmed(message(5), "fifth text\r\n"));
  EXPECT_TRUE(t->confirm_sent());
  EXPECT_EQ(names_in(folder), (std::vector<std::string>{"mail-5@passage.eml"}));

  // A checked send() between unconfirmed ones that finds the folder renamed away removes
  // the unconfirmed copies written there too.
  ASSERT_TRUE(t->send_unconfirmed(message(7), "seventh text\r\n"));
  fs::rename(folder, folder + ".older");
  ASSERT_TRUE(t->send(message(8), "eighth text\r\n"));
  EXPECT_EQ(names_in(folder + ".older"), (std::vector<std::string>{"mail-5@passage.eml"}));
  EXPECT_FALSE(t->confirm_sent());
  EXPECT_EQ(names_in(folder), (std::vector<std::string>{"mail-8@passage.eml"}));
}

// Where the kernel refuses to link by descriptor (before Linux 6.10, without
// CAP_DAC_READ_SEARCH: ENOENT, or EPERM), the mail is linked by its /proc path, and so are
// the later ones, without trying the descriptor again.
TEST(eml_outbox_unnamed, ARefusedLinkByDescriptorFallsBackToProc) {
  for (const int refusal : {ENOENT, EPERM}) {
    passage::testing::temp_dir dir;
    const std::string folder = dir.sub("outbox");
    fs::create_directories(folder);
    if (!tmpfile_supported(folder)) GTEST_SKIP() << "no O_TMPFILE on this file system";
    int tries = 0;
    auto t = make_eml_transport(folder, {.descriptor_link_errno = [&] {
                                  ++tries;
                                  return refusal;
                                }});
    ASSERT_TRUE(t->send(message(1), "first text\r\n")) << refusal;
    EXPECT_EQ(tries, 1);
    ASSERT_TRUE(t->send(message(2), "second text\r\n"));
    ASSERT_TRUE(t->send(message(1), "sent again\r\n"));  // over the copy there
    EXPECT_EQ(tries, 1);
    EXPECT_EQ(names_in(folder),
              (std::vector<std::string>{"mail-1@passage.eml", "mail-2@passage.eml"}));
    EXPECT_EQ(read_file(folder + "/mail-1@passage.eml"), "sent again\r\n");
    EXPECT_EQ(read_file(folder + "/mail-2@passage.eml"), "second text\r\n");
  }
}

// The folder gone again while the mail is written in the folder made anew: the send fails
// with the reason (a retry follows), and no copy is left anywhere.
TEST(eml_outbox_unnamed, AFolderGoneTwiceInOneSendFailsWithTheReason) {
  passage::testing::temp_dir dir;
  const std::string folder = dir.sub("outbox");
  fs::create_directories(folder);
  if (!tmpfile_supported(folder)) GTEST_SKIP() << "no O_TMPFILE on this file system";
  // Deleted just before each link.
  auto deleted = make_eml_transport(folder, {.descriptor_link_errno = [&] {
                                      fs::remove_all(folder);
                                      return 0;
                                    }});
  const auto failed = deleted->send(message(1), "text\r\n");
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().text.find(std::strerror(ENOENT)), std::string::npos)
      << failed.error().text;
  EXPECT_EQ(names_in(folder), std::vector<std::string>{});

  // Renamed away (and made anew) just before each link.
  int renames = 0;
  auto renamed = make_eml_transport(folder, {.descriptor_link_errno = [&] {
                                      fs::rename(folder, folder + std::to_string(++renames));
                                      fs::create_directories(folder);
                                      return 0;
                                    }});
  EXPECT_FALSE(renamed->send(message(2), "text\r\n"));
  EXPECT_EQ(renames, 2);
  for (const auto& f : {folder, folder + "1", folder + "2"}) {
    EXPECT_EQ(names_in(f), std::vector<std::string>{}) << f;
  }
}

// A process killed while it writes mails leaves only whole copies under .eml names, and
// the mail it was writing is written whole when sent again after the restart. Unnamed
// files never show a temporary name.
TEST_P(eml_outbox, AWriterKilledMidwayLeavesNoPartialCopy) {
  const std::string& folder = folder_;
  fs::create_directories(folder);
  // Big texts: the kill most likely lands in a write, which takes the most time.
  const std::string wire(8u << 20, 'x');
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto t = transport();
    for (int i = 0;; ++i) {
      if (!t->send(message(i), wire)) ::_exit(1);
    }
  }
  // Killed once a few copies are out (a rename's `.tmp` is not one), in the middle of the
  // next ones.
  auto copies_in = [](const std::vector<std::string>& names) {
    return std::count_if(names.begin(), names.end(),
                         [](const std::string& n) { return n.ends_with(".eml"); });
  };
  bool temporary_seen = false;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  for (;;) {
    const auto names = names_in(folder);
    temporary_seen = temporary_seen || has_temporary_name(names);
    if (copies_in(names) >= 3 || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(1ms);
  }
  std::this_thread::sleep_for(7ms);
  ::kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the writer failed before it was killed";

  const auto names = names_in(folder);
  if (unnamed()) {
    EXPECT_FALSE(temporary_seen || has_temporary_name(names));
  }
  int copies = 0;
  for (const auto& name : names) {
    if (fs::path(name).extension() != ".eml") continue;  // a rename's leftover at most
    EXPECT_EQ(fs::file_size(fs::path(folder) / name), wire.size()) << name << " is partial";
    ++copies;
  }
  ASSERT_GE(copies, 3);
  // The next mail (the one being written, or not begun) is written whole after the restart.
  auto t = transport();
  ASSERT_TRUE(t->send(message(copies), "after the restart\r\n"));
  EXPECT_EQ(read_file(fs::path(folder) / ("mail-" + std::to_string(copies) + "@passage.eml")),
            "after the restart\r\n");
}

// A write that fails leaves no file with the recipient's data: not when the rename fails
// (a folder in the copy's place), not when the write does (a file size limit).
TEST_P(eml_outbox, AFailedWriteLeavesNoFile) {
  const std::string& folder = folder_;
  fs::create_directories(folder + "/mail-1@passage.eml/in the way");
  auto t = transport();
  EXPECT_FALSE(t->send(message(1), "text\r\n"));
  EXPECT_EQ(names_in(folder), (std::vector<std::string>{"mail-1@passage.eml"}));

  // In a child: the limit is the process's.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    const rlimit small{4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &small);
    auto writer = transport();
    ::_exit(writer->send(message(2), std::string(64 * 1024, 'x')) ? 1 : 0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the write did not fail";
  EXPECT_EQ(names_in(folder), (std::vector<std::string>{"mail-1@passage.eml"}));
}

// Removing a copy removes the temporary file a writer killed midway left with it.
TEST(eml_outbox_removal, ACopyGoesWithItsTemporaryFile) {
  passage::testing::temp_dir dir;
  const std::string folder = dir.sub("outbox");
  fs::create_directories(folder);
  for (const auto* name : {"mail-1@passage.eml", "mail-1@passage.eml.tmp", "mail-2@passage.eml.tmp",
                           "mail-3@passage.eml"}) {
    std::ofstream(folder + "/" + name) << "To: ada@example.com\r\n";
  }
  EXPECT_TRUE(remove_eml_copy(folder, "<mail-1@passage>"));
  EXPECT_TRUE(remove_eml_copy(folder, "<mail-2@passage>"));
  EXPECT_EQ(names_in(folder), (std::vector<std::string>{"mail-3@passage.eml"}));
}

// Unnamed files stay in use after an error that is the mail's, not the file system's (here
// a name too long): a rename would trip on the folder in the way of the next one's
// temporary name, which unnamed files never use.
TEST(eml_outbox_unnamed, AnErrorOfOneMailKeepsUnnamedFiles) {
  passage::testing::temp_dir dir;
  const std::string folder = dir.sub("outbox");
  fs::create_directories(folder + "/mail-2@passage.eml.tmp");
  if (!tmpfile_supported(folder)) GTEST_SKIP() << "no O_TMPFILE on this file system";
  auto renamed = make_eml_transport(folder, {.unnamed_files = false});
  EXPECT_FALSE(renamed->send(message(2), "text\r\n"));  // the folder is in its way

  auto t = make_eml_transport(folder);
  mail_message too_long = message(1);
  too_long.message_id = "<" + std::string(300, 'a') + "@passage>";
  EXPECT_FALSE(t->send(too_long, "text\r\n"));
  ASSERT_TRUE(t->send(message(2), "text\r\n"));
  EXPECT_EQ(read_file(folder + "/mail-2@passage.eml"), "text\r\n");
}

// The decoded text/plain part of an .eml as the mailer writes it (base64 body).
std::string text_of(const fs::path& eml) {
  const std::string wire = read_file(eml);
  const auto at = wire.find("Content-Type: text/plain");
  if (at == std::string::npos) return {};
  const auto body = wire.find("\r\n\r\n", at) + 4;
  std::string in = wire.substr(body, wire.find("\r\n--", body) - body);
  std::erase_if(in, [](char c) { return c == '\r' || c == '\n'; });
  return base64_decode(in).value_or("");
}

// The .eml transport, with sends held at a gate until the test opens it.
class gated_transport final : public mail_transport {
 public:
  explicit gated_transport(std::string folder) : inner_(make_eml_transport(std::move(folder))) {}

  result<void, send_error> send(const mail_message& m, const std::string& wire) override {
    std::unique_lock lk(mu_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lk, [this] { return open_; });
    ++sent_;
    return inner_->send(m, wire);
  }
  bool discard(std::string_view id) override { return inner_->discard(id); }
  bool keeps_copies() const override { return true; }
  std::vector<std::string> kept_copies() const override { return inner_->kept_copies(); }
  std::optional<std::string> read_copy(std::string_view id) const override {
    return inner_->read_copy(id);
  }
  std::string describe() const override { return inner_->describe(); }

  // Whether a send reached the gate within 10 s.
  bool wait_for_send() {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, 10s, [this] { return waiting_ > 0; });
  }
  void open() {
    std::lock_guard lk(mu_);
    open_ = true;
    cv_.notify_all();
  }
  // Mails passed on to the .eml transport.
  int sent() {
    std::lock_guard lk(mu_);
    return sent_;
  }

 private:
  std::unique_ptr<mail_transport> inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_ = 0;
  int sent_ = 0;
  bool open_ = false;
};

// The .eml transport that takes the first `ok` mails and refuses every one after, counting
// the sends of each message id.
class refusing_after final : public mail_transport {
 public:
  refusing_after(std::string folder, int ok)
      : inner_(make_eml_transport(std::move(folder))), ok_(ok) {}

  result<void, send_error> send(const mail_message& m, const std::string& wire) override {
    std::lock_guard lk(mu_);
    ++sends_[m.message_id];
    if (ok_ > 0) {
      --ok_;
      return inner_->send(m, wire);
    }
    ++refused_;
    cv_.notify_all();
    return fail(std::string("refused"));
  }
  bool discard(std::string_view id) override { return inner_->discard(id); }
  bool keeps_copies() const override { return true; }
  std::string describe() const override { return inner_->describe(); }

  // Whether a send was refused within 10 s.
  bool wait_for_refusal() {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, 10s, [this] { return refused_ > 0; });
  }
  std::map<std::string, int> sends() {
    std::lock_guard lk(mu_);
    return sends_;
  }

 private:
  std::unique_ptr<mail_transport> inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  int ok_;
  int refused_ = 0;
  std::map<std::string, int> sends_;
};

// The .eml transport whose folder is renamed away and made again (`mv outbox outbox.old &&
// mkdir outbox`) right after its `after`-th copy, counting checked and unconfirmed sends.
class renaming_after final : public mail_transport {
 public:
  renaming_after(std::string folder, int after)
      : inner_(make_eml_transport(folder)), folder_(std::move(folder)), after_(after) {}

  result<void, send_error> send(const mail_message& m, const std::string& wire) override {
    ++checked;
    auto r = inner_->send(m, wire);
    copied();
    return r;
  }
  result<void, send_error> send_unconfirmed(const mail_message& m,
                                            const std::string& wire) override {
    ++unconfirmed;
    auto r = inner_->send_unconfirmed(m, wire);
    copied();
    return r;
  }
  bool confirm_sent() override {
    ++confirms;
    return inner_->confirm_sent();
  }
  bool discard(std::string_view id) override { return inner_->discard(id); }
  bool keeps_copies() const override { return true; }
  std::string describe() const override { return inner_->describe(); }

  std::atomic<int> checked = 0, unconfirmed = 0, confirms = 0;

 private:
  void copied() {
    if (--after_ != 0) return;
    fs::rename(folder_, folder_ + ".old");
    fs::create_directories(folder_);
  }
  std::unique_ptr<mail_transport> inner_;
  std::string folder_;
  int after_;
};

class mailer_outbox : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = eventstore::open_event_store({.path = dir_.sub("events"), .sync = false});
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
    reads_ = std::make_unique<testing::failing_reads>(*store_);
  }
  void TearDown() override {
    if (mailer_) mailer_->stop();
  }

  void start_mailer(std::unique_ptr<mail_transport> transport = nullptr,
                    std::chrono::milliseconds initial_backoff = 1s,
                    std::chrono::milliseconds batch_delay = 0ms) {
    if (!transport) transport = make_eml_transport(outbox());
    mailer_options o;
    o.initial_backoff = initial_backoff;
    o.batch_delay = batch_delay;
    o.state_path = dir_.sub("mailer");
    o.outbox_path = outbox();
    o.templates_dir = templates_dir_;
    o.personal_link = [](std::string_view, const uuid&, const uuid&) { return "http://x/i"; };
    o.password_link = [](const uuid&, const uuid&) { return std::string("http://x/set"); };
    mailer_ = std::make_unique<mailer>(*reads_, codec_, std::move(transport), o);
    ASSERT_TRUE(mailer_->start());
  }

  std::string outbox() { return dir_.sub("outbox"); }

  template <typename... E>
  std::uint64_t append(const std::string& stream, const E&... events) {
    std::vector<eventstore::new_event> encoded;
    (encoded.push_back(*codec_.encode(events, {uuid::random(), "c", "", "test"})), ...);
    auto r = store_->append({{stream, eventstore::expected_version::any(), encoded}});
    EXPECT_TRUE(r) << r.error().message;
    return r ? r->last_position : 0;
  }

  d::learner_registered registered(const uuid& learner, std::string email, std::string first) {
    d::learner_registered r;
    r.org_id_ = org_;
    r.learner_id_ = learner;
    r.registered_at_ = from_unix_micros(1'700'000'000'000'000);
    r.personal_data_.email_ = std::move(email);
    r.personal_data_.first_name_ = std::move(first);
    return r;
  }
  // A set-password link staff sent again: no invite, no name in the event.
  d::password_setup_issued link_sent_again(const uuid& learner, std::string email) {
    d::password_setup_issued w;
    w.org_id_ = org_;
    w.learner_id_ = learner;
    w.setup_id_ = uuid::random();
    w.issued_at_ = from_unix_micros(1'700'000'000'000'000);
    w.expires_at_ = w.issued_at_ + std::chrono::hours(24 * 7);
    w.personal_data_.email_ = std::move(email);
    return w;
  }

  // A claim's welcome mail: issued with the registration (issue_password_setup_for), in the
  // same append right after it, naming the claimed invite.
  d::password_setup_issued claims_welcome(const d::learner_registered& r) {
    return d::issue_password_setup_for(r, uuid::random(), uuid::random());
  }

  d::private_invitation_sent invitation(std::string email) {
    d::private_invitation_sent inv;
    inv.org_id_ = org_;
    inv.invite_id_ = uuid::random();
    inv.invitation_id_ = uuid::random();
    inv.job_id_ = uuid::random();
    inv.sent_at_ = from_unix_micros(1'700'000'000'000'000);
    inv.personal_data_.email_ = std::move(email);
    return inv;
  }

  // Waits until the mailer's checkpoint reaches `position`.
  bool handled(std::uint64_t position) {
    return eventually([&] { return mailer_->stats().checkpoint >= position; });
  }
  // Waits (10 s at most) until `done()`.
  template <typename F>
  static bool eventually(F done) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }

  // Registrations and welcome mails of `n` learners in one append (read in one batch: one
  // run), l<i>@example.com; returns the append's last position.
  std::uint64_t append_welcome_run(int n, std::vector<d::password_setup_issued>* mails = nullptr) {
    std::vector<eventstore::stream_append> appends;
    for (int i = 0; i < n; ++i) {
      const uuid learner = uuid::random();
      const std::string email = "l" + std::to_string(i) + "@example.com";
      const auto w = link_sent_again(learner, email);
      if (mails) mails->push_back(w);
      appends.push_back(
          {d::learner_stream(learner),
           eventstore::expected_version::any(),
           {*codec_.encode(registered(learner, email, "L"), {uuid::random(), "c", "", "test"}),
            *codec_.encode(w, {uuid::random(), "c", "", "test"})}});
    }
    auto appended = store_->append(appends);
    EXPECT_TRUE(appended);
    return appended ? appended->last_position : 0;
  }

  // The outcome events in the stream job-<job_id>.
  std::vector<eventstore::recorded_event> outcomes_of(const uuid& job_id) {
    auto r = store_->read_stream(d::email_job_stream(job_id), 1,
                                 eventstore::read_direction::forward, 100);
    EXPECT_TRUE(r);
    return r ? *r : std::vector<eventstore::recorded_event>{};
  }

  passage::testing::temp_dir dir_;
  std::unique_ptr<eventstore::event_store> store_;
  std::unique_ptr<testing::failing_reads> reads_;  // the mailer's view of store_
  std::unique_ptr<eventstore::key_store> keys_ = eventstore::make_memory_key_store();
  eventstore::event_codec codec_{*keys_, std::string(32, 'p')};
  uuid org_ = uuid::random();
  std::string templates_dir_;  // start_mailer()'s: none
  std::unique_ptr<mailer> mailer_;
};

// The text of every .eml in `folder`, decoded.
std::vector<std::string> texts_in(const std::string& folder) {
  std::vector<std::string> texts;
  for (const auto& name : names_in(folder)) texts.push_back(text_of(fs::path(folder) / name));
  return texts;
}

// A link sent again carries no name: the mail greets by the registered first name, found
// in the same batch (registration and link read together: no read of the learner's
// stream, which fails meanwhile) as in the log (read later).
TEST_F(mailer_outbox, ALinkSentAgainGreetsByTheRegisteredFirstName) {
  const uuid ada = uuid::random(), bob = uuid::random(), cyd = uuid::random();
  // Before the start: read in one batch with the registrations.
  append(d::learner_stream(ada), registered(ada, "ada@example.com", "Ada"),
         link_sent_again(ada, "ada@example.com"));
  append(d::learner_stream(cyd), registered(cyd, "cyd@example.com", ""),
         link_sent_again(cyd, "cyd@example.com"));
  append(d::learner_stream(bob), registered(bob, "bob@example.com", "Bob"));
  reads_->fail_streams = "learner-";
  start_mailer();
  ASSERT_TRUE(handled(store_->head_position()));
  reads_->fail_streams.reset();  // the mailer waits for new events now
  // After the registration was handled: read from the learner's stream.
  ASSERT_TRUE(handled(append(d::learner_stream(bob), link_sent_again(bob, "bob@example.com"))));

  auto texts = texts_in(outbox());
  ASSERT_EQ(texts.size(), 3u);
  int ada_seen = 0, bob_seen = 0, there_seen = 0;
  for (const auto& t : texts) {
    ada_seen += t.starts_with("Hello Ada,");
    bob_seen += t.starts_with("Hello Bob,");
    there_seen += t.starts_with("Hello there,");
  }
  EXPECT_EQ(ada_seen, 1);
  EXPECT_EQ(bob_seen, 1);
  EXPECT_EQ(there_seen, 1);  // Cyd registered without a first name
  EXPECT_EQ(mailer_->stats().sent, 3u);
}

// An organization's template files are read once per batch (not once per mail) and an
// edit is used from the next batch on.
TEST_F(mailer_outbox, ATemplateEditedBetweenBatchesIsUsedFromTheNextOn) {
  templates_dir_ = dir_.sub("templates");
  const std::string org_dir = templates_dir_ + "/" + org_.to_string();
  fs::create_directories(org_dir);
  { std::ofstream(org_dir + "/password_link.txt") << "first {{name}}"; }
  start_mailer();
  ASSERT_TRUE(handled(append_welcome_run(3)));
  EXPECT_EQ(texts_in(outbox()), (std::vector<std::string>(3, "first L")));

  { std::ofstream(org_dir + "/password_link.txt") << "second {{name}}"; }
  fs::remove_all(outbox());
  ASSERT_TRUE(handled(append_welcome_run(2)));
  EXPECT_EQ(texts_in(outbox()), (std::vector<std::string>(2, "second L")));
  EXPECT_EQ(mailer_->stats().sent, 5u);
}

// A claim's welcome mail read right after its registration greets by the name it carries
// (the registration's, or "there" when it gave none) and writes the learner's address for a
// forget (the registration is not decoded for either): LearnerForgotten removes the copies.
TEST_F(mailer_outbox, AClaimsWelcomeMailNeedsNotItsRegistrationDecoded) {
  const uuid ada = uuid::random(), cyd = uuid::random();
  const auto ada_reg = registered(ada, "ada@example.com", "Ada");
  const auto cyd_reg = registered(cyd, "cyd@example.com", "");
  append(d::learner_stream(ada), ada_reg, claims_welcome(ada_reg));
  const auto last = append(d::learner_stream(cyd), cyd_reg, claims_welcome(cyd_reg));
  reads_->fail_streams = "learner-";  // nothing is read from the learners' streams
  start_mailer();
  ASSERT_TRUE(handled(last));
  reads_->fail_streams.reset();
  auto texts = texts_in(outbox());
  ASSERT_EQ(texts.size(), 2u);
  std::sort(texts.begin(), texts.end());
  EXPECT_TRUE(texts[0].starts_with("Hello Ada,")) << texts[0];
  EXPECT_TRUE(texts[1].starts_with("Hello there,")) << texts[1];
  EXPECT_EQ(mailer_->stats().sent, 2u);
  const auto now = from_unix_micros(1'700'000'000'000'000);
  append(d::learner_stream(ada), d::learner_forgotten{org_, ada, now});
  ASSERT_TRUE(handled(append(d::learner_stream(cyd), d::learner_forgotten{org_, cyd, now})));
  EXPECT_TRUE(names_in(outbox()).empty());
}

// A welcome mail to another address than the one the learner registered with (a link
// sent again to an address changed since), in the registration's batch: the learner's
// address kept for a forget is still the registered one, so the copies sent to it before
// the registration go with the learner.
TEST_F(mailer_outbox, AWelcomeMailToAnotherAddressKeepsTheRegisteredOneForAForget) {
  const uuid learner = uuid::random();
  const auto inv = invitation("ada@example.com");
  const auto invited = append(d::invite_stream(inv.invite_id_), inv);
  start_mailer();
  ASSERT_TRUE(handled(invited));
  const auto welcomed =
      append(d::learner_stream(learner), registered(learner, "ada@example.com", "Ada"),
             link_sent_again(learner, "bob@example.com"));
  ASSERT_TRUE(handled(welcomed));
  ASSERT_EQ(mailer_->stats().sent, 2u);
  ASSERT_EQ(names_in(outbox()).size(), 2u);
  d::learner_forgotten f{org_, learner, from_unix_micros(1'700'000'000'000'000)};
  ASSERT_TRUE(handled(append(d::learner_stream(learner), f)));
  for (const auto& name : names_in(outbox())) {
    EXPECT_EQ(read_file(fs::path(outbox()) / name).find("ada@example.com"), std::string::npos)
        << name << " is the invitation's copy, kept";
  }
}

// A LearnerForgotten read in the same batch as the learner's registration still finds the
// address the registration gave (written before the forget is handled): the copy of a mail
// sent to the address before it was a learner's goes.
TEST_F(mailer_outbox, AForgetInTheBatchOfTheRegistrationPurgesTheAddress) {
  const uuid learner = uuid::random();
  const auto inv = invitation("ada@example.com");
  append(d::invite_stream(inv.invite_id_), inv);
  append(d::learner_stream(learner), registered(learner, "ada@example.com", "Ada"));
  d::learner_forgotten f{org_, learner, from_unix_micros(1'700'000'000'000'000)};
  const auto last = append(d::learner_stream(learner), f);
  start_mailer();
  ASSERT_TRUE(handled(last));
  EXPECT_EQ(mailer_->stats().sent, 1u);     // the invitation went out
  EXPECT_TRUE(names_in(outbox()).empty());  // and its copy is gone with the learner
}

// A forget removes the temporary file a writer killed midway left beside a copy (the
// rename path's `<name>.eml.tmp`, with the recipient's data).
TEST_F(mailer_outbox, AForgetRemovesALeftoverTemporaryFile) {
  const auto inv = invitation("ada@example.com");
  start_mailer();
  ASSERT_TRUE(handled(append(d::invite_stream(inv.invite_id_), inv)));
  const auto names = names_in(outbox());
  ASSERT_EQ(names.size(), 1u);
  { std::ofstream(outbox() + "/" + names.front() + ".tmp") << "To: ada@example.com\r\n"; }
  EXPECT_EQ(mailer_->forget_email(org_, "ada@example.com"), 1u);
  EXPECT_TRUE(names_in(outbox()).empty());
}

// A forget (as POST /v1/learners/{id}/forget runs it: keys destroyed, then the address's
// copies purged) while a welcome mail decoded before it is being written: the copy that
// lands after the purge goes too (the purge moved the count the batch read).
TEST_F(mailer_outbox, AForgetDuringASendRemovesTheCopyWrittenAfter) {
  const uuid ada = uuid::random();
  auto gate = std::make_unique<gated_transport>(outbox());
  auto* gated = gate.get();
  start_mailer(std::move(gate));
  const auto last = append(d::learner_stream(ada), registered(ada, "ada@example.com", "Ada"),
                           link_sent_again(ada, "ada@example.com"));
  ASSERT_TRUE(gated->wait_for_send());
  mailer_->keys_being_destroyed();
  ASSERT_TRUE(codec_.forget_email(org_, "ada@example.com"));
  ASSERT_TRUE(keys_->destroy("learner:" + ada.to_string()));
  EXPECT_EQ(mailer_->forget_email(org_, "ada@example.com"), 1u);  // indexed, not written yet
  gated->open();
  ASSERT_TRUE(handled(last));
  EXPECT_EQ(mailer_->stats().sent, 1u);  // it went out
  EXPECT_TRUE(names_in(outbox()).empty());
}

// A forget that destroys the address's key and then fails on the learner's purges nothing;
// the invitation decoded before it, written after, must not stay in clear: the command
// side told the mailer before it destroyed a key, so the copy is checked and goes.
TEST_F(mailer_outbox, AForgetFailingMidwayDuringASendLeavesNoCopy) {
  auto gate = std::make_unique<gated_transport>(outbox());
  auto* gated = gate.get();
  start_mailer(std::move(gate));
  const auto inv = invitation("ada@example.com");
  const auto last = append(d::invite_stream(inv.invite_id_), inv);
  ASSERT_TRUE(gated->wait_for_send());
  mailer_->keys_being_destroyed();
  ASSERT_TRUE(codec_.forget_email(org_, "ada@example.com"));
  gated->open();
  ASSERT_TRUE(handled(last));
  EXPECT_EQ(mailer_->stats().sent, 1u);
  EXPECT_TRUE(names_in(outbox()).empty());
}

// The EmailSent events in the log, by id.
std::map<uuid, int> email_sent_in(eventstore::event_store& store) {
  std::map<uuid, int> found;
  eventstore::log_filter f;
  f.types = {std::string(d::email_sent::type_name)};
  auto page = store.read_all(f, 1000);
  EXPECT_TRUE(page);
  if (page) {
    for (const auto& rec : *page) ++found[rec.event_id];
  }
  return found;
}

// Welcome mails go out when their run is flushed (indexed in one write, then sent). A stop
// while a mail of the run waits to be tried again ledgers and logs the mails sent before it;
// the next start sends it and the ones after it, and none of those sent before again: one
// copy and one EmailSent per mail.
TEST_F(mailer_outbox, AStopDuringARunKeepsTheMailsSentAndSendsTheRestOnce) {
  const int mails = 5;
  const auto last = append_welcome_run(mails);
  ASSERT_NE(last, 0u);
  auto first = std::make_unique<refusing_after>(outbox(), 2);
  auto* refusing = first.get();
  start_mailer(std::move(first), 1h);  // the third mail waits for its retry until the stop
  ASSERT_TRUE(refusing->wait_for_refusal());
  mailer_->stop();
  const auto sent_by_first = mailer_->stats().sent;
  EXPECT_EQ(sent_by_first, 2u);
  const auto files_first = names_in(outbox());
  EXPECT_EQ(files_first.size(), 2u);
  EXPECT_EQ(email_sent_in(*store_).size(), 2u);
  const auto sent_first = refusing->sends();
  EXPECT_EQ(sent_first.size(), 3u);  // two taken, one refused; the last two never tried
  mailer_.reset();

  auto second = std::make_unique<refusing_after>(outbox(), mails);
  auto* counting = second.get();
  start_mailer(std::move(second));
  ASSERT_TRUE(handled(last));
  EXPECT_EQ(names_in(outbox()).size(), std::size_t(mails));
  EXPECT_EQ(email_sent_in(*store_).size(), std::size_t(mails));
  // Each mail counted once over both runs (a mail logged twice would count twice).
  EXPECT_EQ(sent_by_first + mailer_->stats().sent, std::uint64_t(mails));
  // The three not taken before, once each; none of the two taken before.
  const auto sent_again = counting->sends();
  EXPECT_EQ(sent_again.size(), std::size_t(mails - 2));
  for (const auto& [id, n] : sent_again) EXPECT_EQ(n, 1) << id;
  for (const auto& name : files_first) {
    const std::string id = "<" + name.substr(0, name.size() - 4) + ">";
    EXPECT_EQ(sent_again.count(id), 0u) << id;
  }
  EXPECT_EQ(mailer_->stats().sent, std::size_t(mails - 2));
}

// A run's copies are checked in place once, before they are ledgered (not one stat() of
// the folder per copy). The outbox renamed away during a run: its copies written there are
// removed and every mail of the run is written again under the folder's name, once
// ledgered and logged (SPEC §6: no copy where a forget does not look).
TEST_F(mailer_outbox, ARunWrittenIntoAFolderRenamedAwayIsWrittenAgainUnderItsName) {
  auto t = std::make_unique<renaming_after>(outbox(), 5);
  auto* renaming = t.get();
  start_mailer(std::move(t));
  ASSERT_TRUE(handled(append_welcome_run(3)));
  EXPECT_EQ(renaming->unconfirmed.load(), 3);
  EXPECT_EQ(renaming->checked.load(), 0);
  EXPECT_EQ(renaming->confirms.load(), 1);
  EXPECT_EQ(names_in(outbox()).size(), 3u);

  // The next run of four: the folder moves after its second copy.
  const auto before = names_in(outbox());
  ASSERT_TRUE(handled(append_welcome_run(4)));
  EXPECT_EQ(renaming->unconfirmed.load(), 7);
  EXPECT_EQ(renaming->checked.load(), 4) << "the whole run again, each copy checked";
  EXPECT_EQ(names_in(outbox() + ".old"), before) << "none of the run left there";
  EXPECT_EQ(names_in(outbox()).size(), 4u);
  const auto logged = email_sent_in(*store_);
  EXPECT_EQ(logged.size(), 7u);
  for (const auto& [id, n] : logged) EXPECT_EQ(n, 1) << id.to_string();
  EXPECT_EQ(mailer_->stats().sent, 7u);
}

// A long run's copies are checked every 32 (and at its end), so a node killed after the
// folder was renamed away leaves at most 32 of them in the old folder.
TEST_F(mailer_outbox, ALongRunsCopiesAreCheckedEveryThirtyTwo) {
  auto t = std::make_unique<renaming_after>(outbox(), 1000);  // never renamed
  auto* renaming = t.get();
  start_mailer(std::move(t));
  ASSERT_TRUE(handled(append_welcome_run(70)));
  EXPECT_EQ(renaming->unconfirmed.load(), 70);
  EXPECT_EQ(renaming->confirms.load(), 3) << "after copies 32 and 64, and at the end";
  EXPECT_EQ(names_in(outbox()).size(), 70u);
  EXPECT_EQ(email_sent_in(*store_).size(), 70u);
  EXPECT_EQ(mailer_->stats().sent, 70u);
}

// The mails of a run sent before one that waits for a retry (minutes, at worst) are
// ledgered and logged before the wait: a crash during it sends none of them again.
TEST_F(mailer_outbox, TheMailsSentBeforeARetryAreLoggedBeforeItsWait) {
  ASSERT_NE(append_welcome_run(5), 0u);
  auto t = std::make_unique<refusing_after>(outbox(), 2);
  auto* refusing = t.get();
  start_mailer(std::move(t), 1h);  // the third mail waits for its retry until the stop
  ASSERT_TRUE(refusing->wait_for_refusal());
  // Counted once their outcome events are in the log, which is after their ledger entries.
  EXPECT_TRUE(eventually([&] { return mailer_->stats().sent == 2; }));
  EXPECT_EQ(email_sent_in(*store_).size(), 2u);
  EXPECT_EQ(refusing->sends().size(), 3u);
}

// A stop while a ledgered mail's outcome event waits to be appended (the log refuses
// appends) leaves the checkpoint before the mail's event: the outcome event is appended
// after the next start, once, whether the stop came in the run's append or in the append
// of an outcome ledgered before.
TEST_F(mailer_outbox, AStopWhileAnOutcomeWaitsToBeAppendedAppendsItAfterTheRestart) {
  const uuid ada = uuid::random();
  const auto w = link_sent_again(ada, "ada@example.com");
  const auto last = append(d::learner_stream(ada), w);
  reads_->fail_appends = true;
  // Sent and ledgered with its run; the run's append fails and waits for its retry.
  start_mailer(nullptr, 1h);
  ASSERT_TRUE(eventually([&] { return reads_->appends_failed >= 1; }));
  mailer_->stop();
  mailer_.reset();
  EXPECT_EQ(names_in(outbox()).size(), 1u);
  // Ledgered before the start: only its outcome event is appended, which fails again.
  const int failed = reads_->appends_failed;
  start_mailer(nullptr, 1h);
  ASSERT_TRUE(eventually([&] { return reads_->appends_failed > failed; }));
  mailer_->stop();
  mailer_.reset();
  reads_->fail_appends = false;
  start_mailer();
  ASSERT_TRUE(handled(last));
  const auto logged = outcomes_of(w.setup_id_);
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_EQ(logged.front().type, d::email_sent::type_name);
  EXPECT_EQ(names_in(outbox()).size(), 1u);
}

// A run's mails are indexed before the first is sent; one whose learner is forgotten while
// an earlier one is being sent is checked again (the count of purges moved) and not sent:
// it is recorded as failed, "recipient forgotten".
TEST_F(mailer_outbox, AMailOfARunWhoseLearnerIsForgottenDuringTheRunIsNotSent) {
  std::vector<d::password_setup_issued> mails;
  auto gate = std::make_unique<gated_transport>(outbox());
  auto* gated = gate.get();
  start_mailer(std::move(gate));
  const auto last = append_welcome_run(2, &mails);
  ASSERT_EQ(mails.size(), 2u);
  ASSERT_TRUE(gated->wait_for_send());  // the first mail, held
  const uuid second = mails[1].learner_id_;
  mailer_->keys_being_destroyed();
  ASSERT_TRUE(codec_.forget_email(org_, "l1@example.com"));
  ASSERT_TRUE(keys_->destroy("learner:" + second.to_string()));
  mailer_->forget_learner(second);
  gated->open();
  ASSERT_TRUE(handled(last));
  EXPECT_EQ(gated->sent(), 1);
  EXPECT_EQ(names_in(outbox()).size(), 1u);
  EXPECT_EQ(mailer_->stats().sent, 1u);
  EXPECT_EQ(mailer_->stats().failed, 1u);
  ASSERT_EQ(outcomes_of(mails[0].setup_id_).size(), 1u);
  const auto logged = outcomes_of(mails[1].setup_id_);
  ASSERT_EQ(logged.size(), 1u);
  auto failed = codec_.decode(logged.front());
  ASSERT_TRUE(failed);
  ASSERT_TRUE(std::holds_alternative<d::email_failed>(failed->event));
  EXPECT_EQ(std::get<d::email_failed>(failed->event).error_, "recipient forgotten");
}

// Only a batch that held welcome mails waits batch_delay before the next read (to gather
// the next claims' mails in one run): after other batches the mailer reads on at once.
TEST_F(mailer_outbox, ABatchWithoutWelcomeMailsDoesNotWaitTheBatchDelay) {
  start_mailer(nullptr, 1s, 1h);
  const auto first = invitation("ada@example.com");
  ASSERT_TRUE(handled(append(d::invite_stream(first.invite_id_), first)));
  const auto second = invitation("bob@example.com");
  ASSERT_TRUE(handled(append(d::invite_stream(second.invite_id_), second)));
  EXPECT_EQ(mailer_->stats().sent, 2u);
}

}  // namespace
}  // namespace passage::consumers
