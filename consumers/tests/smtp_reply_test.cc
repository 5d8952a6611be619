// SMTP replies as the mailer reads them: the code and enhanced code of a reply line, and
// which refusals of RCPT TO refuse the mailbox for good (the rest are retried).
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "consumers/mail_transport.h"

namespace passage::consumers {
namespace {

TEST(SmtpReply, ReadsTheCodeAndTheEnhancedCodeOfALine) {
  struct row {
    std::string line;
    std::optional<int> code;
    std::string enhanced;
  };
  for (const auto& r : std::vector<row>{
           {"550 5.1.1 No such mailbox\r\n", 550, "5.1.1"},
           {"554 5.7.1 <ada@example.com>: Relay access denied", 554, "5.7.1"},
           {"451 4.3.0 Try again later", 451, "4.3.0"},
           {"550-5.1.1 The email account that you tried to reach does not exist.", 550, "5.1.1"},
           {"553 5.1.10 Null MX", 553, "5.1.10"},
           {"550 No such user here", 550, ""},
           {"550 5.1.1", 550, "5.1.1"},
           {"550", 550, ""},
           {"250-SIZE 10240000", 250, ""},
           {"550 4.1.1 class unlike the code's", 550, ""},
           {"550 5.1 two parts", 550, ""},
           {"550 5.1.1234 a detail of four digits", 550, ""},
           {"550 5..1 empty subject", 550, ""},
           {"550 5.1.1x", 550, ""},
           {"550 51.1.1 two digits of class", 550, ""},
           {"55 short", std::nullopt, ""},
           {"5500 four digits", std::nullopt, ""},
           {"abc 5.1.1", std::nullopt, ""},
           {"", std::nullopt, ""},
       }) {
    auto reply = parse_smtp_reply(r.line);
    ASSERT_EQ(reply.has_value(), r.code.has_value()) << r.line;
    if (!reply) continue;
    EXPECT_EQ(reply->code, *r.code) << r.line;
    EXPECT_EQ(reply->enhanced, r.enhanced) << r.line;
  }
}

// Only a bad mailbox is for good: 550, 551, 553, or a 5.1.x enhanced code; a refused relay,
// policy or login (530, 554, 5.7.x even on a 550) is configuration, retried like a 4xx.
TEST(SmtpReply, OnlyABadMailboxIsRefusedForGood) {
  struct row {
    smtp_reply reply;
    bool for_good;
  };
  for (const auto& r : std::vector<row>{
           {{550, ""}, true},
           {{551, ""}, true},
           {{553, ""}, true},
           {{550, "5.1.1"}, true},
           {{553, "5.1.3"}, true},
           {{554, "5.1.1"}, true},
           {{551, "5.1.6"}, true},
           {{550, "5.7.1"}, false},
           {{554, "5.7.1"}, false},
           {{530, "5.7.0"}, false},
           {{530, ""}, false},
           {{554, ""}, false},
           {{552, ""}, false},
           {{552, "5.2.2"}, false},
           {{550, "5.4.1"}, false},
           {{451, "4.3.0"}, false},
           {{450, "4.1.1"}, false},
           {{450, ""}, false},
       }) {
    EXPECT_EQ(refuses_mailbox(r.reply), r.for_good) << r.reply.code << " " << r.reply.enhanced;
  }
}

}  // namespace
}  // namespace passage::consumers
