// Request bodies -> commands: strict parsing with the offending field named;
// and every domain error code has an HTTP status of its own.

#include "api/v1/dto.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "api/problem.h"
#include "domain/errors.h"

namespace passage::api::v1 {
namespace {

using nlohmann::json;

TEST(Dto, ParsesTheSpecExampleInvite) {
  auto body = parse_body(R"({"title": "Kubernetes 101 workshop", "type": "self_paced",
    "tracks": [{"track_id": "k8s-basics"}], "access_duration": "P30D",
    "plays_per_track": 3, "expires_at": "2026-12-31T23:59:00Z", "claim_limit": 50,
    "access": "allowed", "allowed_domains": ["example.com"], "show_share_button": true})");
  ASSERT_TRUE(body);
  auto d = parse_invite_draft(*body);
  ASSERT_TRUE(d) << d.error().field << " " << d.error().message;
  EXPECT_EQ(d->title_, "Kubernetes 101 workshop");
  EXPECT_EQ(d->tracks_.size(), 1u);
  EXPECT_EQ(d->access_duration_, "P30D");
  EXPECT_EQ(d->claim_limit_, 50);
  EXPECT_EQ(d->access_, domain::access_mode::allowed);
  ASSERT_TRUE(d->expires_at_);
  EXPECT_TRUE(d->show_share_button_);
}

TEST(Dto, NamesTheFieldOfEveryBadInput) {
  struct bad_case {
    const char* body;
    const char* field;
  };
  for (const auto& c : std::vector<bad_case>{
           {R"({"tracks":["a"]})", "title"},
           {R"({"title":"x"})", "tracks"},
           {R"({"title":1,"tracks":["a"]})", "title"},
           {R"({"title":"x","tracks":"a"})", "tracks"},
           {R"({"title":"x","tracks":[{"pausable":true}]})", "tracks[0].track_id"},
           {R"({"title":"x","tracks":[{"track_id":"a","extra":1}]})", "tracks[0].extra"},
           {R"({"title":"x","tracks":["a"],"claim_limit":"5"})", "claim_limit"},
           {R"({"title":"x","tracks":["a"],"claim_limit":1.5})", "claim_limit"},
           {R"({"title":"x","tracks":["a"],"claim_limit":18446744073709551615})", "claim_limit"},
           {R"({"title":"x","tracks":["a"],"expires_at":"2026-13-01T00:00:00Z"})", "expires_at"},
           {R"({"title":"x","tracks":["a"],"type":"webinar"})", "type"},
           {R"({"title":"x","tracks":["a"],"access":"everyone"})", "access"},
           {R"({"title":"x","tracks":["a"],"allowed_emails":[1]})", "allowed_emails[0]"},
           {R"({"title":"x","tracks":["a"],"show_share_button":"yes"})", "show_share_button"},
           {R"({"title":"x","tracks":["a"],"unknown":true})", "unknown"},
       }) {
    auto body = parse_body(c.body);
    ASSERT_TRUE(body) << c.body;
    auto d = parse_invite_draft(*body);
    ASSERT_FALSE(d) << c.body;
    EXPECT_EQ(d.error().field, c.field) << c.body << ": " << d.error().message;
  }
}

TEST(Dto, RefusesBodiesThatAreNotJsonObjects) {
  for (const char* b : {"", "nope", "[]", "42", "{\"a\":", "{\"t\":\"\xc3\x28\"}"}) {
    EXPECT_FALSE(parse_body(b)) << b;
  }
  EXPECT_TRUE(parse_body("", true));
}

// A body nested deeper than any request of the API needs is refused before a handler copies
// it (nlohmann's copy and comparison recurse: 64 KiB of `[` could exhaust a thread's stack);
// 32 levels are still read.
TEST(Dto, RefusesBodiesNestedTooDeep) {
  auto nested = [](std::size_t levels) {
    return R"({"track_id":"a","x":)" + std::string(levels, '[') + std::string(levels, ']') + "}";
  };
  EXPECT_TRUE(parse_body(nested(31)));
  for (std::size_t levels : {32u, 33u, 60000u}) {
    auto r = parse_body(nested(levels));
    ASSERT_FALSE(r) << levels;
    EXPECT_NE(r.error().message.find("deeper than 32"), std::string::npos) << r.error().message;
  }
  // Deep but broken: still refused, as too deep (what is known first).
  EXPECT_FALSE(parse_body(R"({"x":)" + std::string(100, '[')));
}

// A name twice in one object is refused, naming it by its path; the same name in sibling or
// nested objects is fine.
TEST(Dto, RefusesANameTwiceInOneObject) {
  for (const auto& [body, name] : std::vector<std::pair<std::string, std::string>>{
           {R"({"email":"a@b.co","email":"c@d.co"})", "email"},
           {R"({"a":1,"b":2,"a":3})", "a"},
           {R"({"tracks":[{"track_id":"x","pausable":true,"track_id":"y"}]})",
            "tracks[0].track_id"},
           {R"({"tracks":[{"track_id":"x"},{"track_id":"y","max_plays":1,"max_plays":2}]})",
            "tracks[1].max_plays"},
           {R"({"outer":{"k":1,"k":1}})", "outer.k"},
           {R"({"a":[[1,{"x":1}],{"b":{"c":1,"c":2}}]})", "a[1].b.c"},
           {R"({"a":[1,2,[3]],"b":{"x":{}},"b":2})", "b"},
       }) {
    auto r = parse_body(body);
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().field, name) << body;
    EXPECT_NE(r.error().message.find("more than once"), std::string::npos) << r.error().message;
  }
  for (const char* body : {R"({"k":{"k":1},"tracks":[{"k":1},{"k":2}]})",
                           R"({"a":{"x":1},"b":{"x":2}})", R"({"a":[],"b":{}})"}) {
    EXPECT_TRUE(parse_body(body)) << body;
  }
}

TEST(Dto, PatchKeepsAbsentFieldsAndClearsNulls) {
  auto p = parse_invite_patch(json::parse(R"({"title":"New","expires_at":null})"));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->title_, "New");
  ASSERT_TRUE(p->expires_at_);
  EXPECT_FALSE(*p->expires_at_) << "null clears";
  EXPECT_FALSE(p->claim_limit_);
  EXPECT_FALSE(p->tracks_);
}

TEST(Dto, ClaimInputTakesAnswersAsStringsOrBooleans) {
  auto in = parse_claim_input(json::parse(
      R"({"email":"a@b.c","first_name":"A","answers":{"company":"Acme","consent":true}})"));
  ASSERT_TRUE(in);
  EXPECT_EQ(*in->email, "a@b.c");
  EXPECT_EQ(in->answers.at("consent"), "true");
  EXPECT_FALSE(parse_claim_input(json::parse(R"({"answers":{"n":1}})")));
  EXPECT_FALSE(parse_claim_input(json::parse(R"({"emial":"x"})")));
}

// What a learner types is bounded and has no control characters, on both paths (the
// direct reader's and the document's): it is stored in events, published and exported.
TEST(Dto, ClaimNamesAndAnswersAreBoundedAndWithoutControlCharacters) {
  const std::string name200(200, 'n'), name201(201, 'n');
  auto name = [](const std::string& field, const std::string& v) {
    return parse_claim_body(json{{field, v}}.dump());
  };
  EXPECT_TRUE(name("first_name", name200));
  for (const std::string field : {"first_name", "last_name"}) {
    auto too_long = name(field, name201);
    ASSERT_FALSE(too_long) << field;
    EXPECT_EQ(too_long.error().field, field);
    EXPECT_EQ(too_long.error().message, "longer than 200 bytes");
    // Through the document (an escape) as directly.
    auto escaped = parse_claim_body("{\"" + field + "\":\"\\u006e" + std::string(200, 'n') + "\"}");
    ASSERT_FALSE(escaped) << field;
    EXPECT_EQ(escaped.error().field, field);
    for (const std::string& bad :
         std::vector<std::string>{"Ada\nLovelace", "Ada\x07", "Ada\x7f", std::string("A\0da", 4)}) {
      auto control = name(field, bad);
      ASSERT_FALSE(control) << field;
      EXPECT_EQ(control.error().message, "contains a control character");
    }
  }
  auto answers = [](const std::string& v) {
    return parse_claim_body(json{{"answers", {{"company", v}}}}.dump());
  };
  EXPECT_TRUE(answers(std::string(1000, 'a')));
  EXPECT_TRUE(answers("line one\r\nline two\tend"));
  auto long_answer = answers(std::string(1001, 'a'));
  ASSERT_FALSE(long_answer);
  EXPECT_EQ(long_answer.error().field, "answers.company");
  EXPECT_FALSE(answers("bell\x07"));
  // C1 controls (U+0080-U+009F) as C0: raw UTF-8 and escaped, through the body and the
  // document, in names and answers; the characters beside them pass.
  for (const std::string c1 : {"\xc2\x80", "\xc2\x85", "\xc2\x9b", "\xc2\x9f"}) {
    for (const std::string field : {"first_name", "last_name"}) {
      auto raw = name(field, "Ada" + c1);
      ASSERT_FALSE(raw) << field;
      EXPECT_EQ(raw.error().field, field);
      EXPECT_EQ(raw.error().message, "contains a control character");
      char escape[8];
      std::snprintf(escape, sizeof escape, "\\u%04x", static_cast<unsigned char>(c1[1]));
      auto escaped = parse_claim_body("{\"" + field + "\":\"Ada" + escape + "\"}");
      ASSERT_FALSE(escaped) << field << " " << escape;
      EXPECT_EQ(escaped.error().message, "contains a control character");
      auto document = parse_claim_input(json{{field, c1 + "Ada"}});
      ASSERT_FALSE(document) << field;
      EXPECT_EQ(document.error().message, "contains a control character");
    }
    auto answer = answers("line one" + c1 + "line two");
    ASSERT_FALSE(answer);
    EXPECT_EQ(answer.error().field, "answers.company");
    EXPECT_FALSE(parse_claim_input(json{{"answers", {{"company", c1}}}}));
  }
  EXPECT_TRUE(name("first_name",
                   "\xc2\xa0"
                   "Ad\xc2\xa9"));                           // NBSP, copyright sign: U+00A0, U+00A9
  EXPECT_TRUE(name("last_name", "\xc3\x85ngstr\xc3\xb6m"));  // "Ångström": 85 after C3 is Å
  EXPECT_TRUE(answers("\xc2\xbfQu\xc3\xa9?\n\xe2\x80\x85"));  // U+2005 holds 80 85, not C1
  // Multi-byte text counts in bytes: 100 "é" are 200 bytes.
  std::string accents;
  for (int i = 0; i < 100; ++i) accents += "\xc3\xa9";
  EXPECT_TRUE(name("last_name", accents));
  EXPECT_FALSE(name("last_name", accents + "e"));
}

// The claim answer's direct writer against the document it replaces, as a JSON answer
// dumps it (invalid UTF-8 replaced): the same bytes, for every shape of claim.
std::string dumped(const service::claim_result& r) {
  return to_json(r).dump(-1, ' ', false, json::error_handler_t::replace);
}

TEST(Dto, ClaimBodiesReadTheSameWithOrWithoutAJsonDocument) {
  // parse_claim_body reads the common body directly (plain_claim_body); for every body
  // its result (or error) must be the document path's. `direct` says whether the direct
  // reader takes the body: if it declined everything, the results would agree trivially.
  struct row {
    std::string body;
    bool direct;
  };
  const std::string long_email = std::string(100'000, 'a') + "@example.com";
  const std::vector<row> rows = {
      {R"({"email":"ada@example.com"})", true},
      {R"({"email":"ada@example.com","first_name":"Ada","last_name":"Lovelace"})", true},
      {" \t\r\n{ \"first_name\" : \"Ada\" , \"email\":\"a@b.co\" }\n ", true},
      {R"({})", true},
      {R"( { } )", true},
      {R"({"email":""})", true},
      {R"({"email":"","learner_token":""})", true},
      {R"({"learner_token":"tok.en-1"})", true},
      {R"({"email":"ada@example.com","first_name":"Ada","last_name":"L","learner_token":"t"})",
       true},
      {R"({"first_name":" ~!#$%&'()*+,-./:;<=>?@[]^_`{|}"})", true},
      {"{\"email\":\"" + long_email + "\",\"first_name\":\"" + std::string(200, 'n') + "\"}", true},
      // Repeated members: refused on both paths.
      {R"({"email":"a@b.co","email":"c@d.co"})", false},
      {R"({"email":"a@b.co","email":"a@b.co"})", false},
      {R"({"first_name":"A","email":"a@b.co","first_name":"B"})", false},
      {R"({"learner_token":"t","learner_token":""})", false},
      // Values that are not plain strings.
      {R"({"email":null})", false},
      {R"({"email":1})", false},
      {R"({"email":true})", false},
      {R"({"first_name":false})", false},
      {R"({"email":[]})", false},
      {R"({"email":{}})", false},
      {R"({"email":["a@b.co"]})", false},
      // Escapes: the document decodes them.
      {R"({"email":"a\u0040b.co"})", false},
      {R"({"email":"a\"b@c.co"})", false},
      {R"({"email":"a\/b@c.co"})", false},
      {R"({"first_name":"a\u0000b"})", false},
      {R"({"first_name":"\ud83d\ude00"})", false},  // a surrogate pair
      {R"({"first_name":"\ud83d"})", false},        // a lone high surrogate
      {R"({"first_name":"\ude00\ud83d"})", false},  // the pair reversed
      {R"({"first_name":"\uD83D\uDE00x"})", false},
      {R"({"em\u0061il":"a@b.co"})", false},  // an escape in the key
      {R"({"first_name":"\q"})", false},
      // Non-ASCII and control characters.
      {R"({"first_name":"Zoë"})", false},
      {"{\"first_name\":\"\xf0\x9f\x98\x80\"}", false},
      {"{\"email\":\"a\tb\"}", false},
      {"{\"email\":\"a\x7f\"}", false},
      {"{\"first_name\":\"A\xc2\x85\"}", false},  // C1: NEL
      {R"({"last_name":"A\u009b"})", false},
      {"{\"first_name\":\"\xc3\x28\"}", false},  // invalid UTF-8 in a string
      // Keys the reader does not take, casing included.
      {R"({"emial":"x"})", false},
      {R"({"Email":"a@b.co"})", false},
      {R"({"EMAIL":"a@b.co"})", false},
      {R"({"email ":"a@b.co"})", false},
      {R"({"email":"a@b.co","answers":{"company":"ACME","consent":true}})", false},
      // A byte order mark, and invalid UTF-8 outside strings.
      {"\xef\xbb\xbf{\"email\":\"a@b.co\"}", false},
      {"\xef\xbb\xbf", false},
      {"{\"email\":\"a@b.co\"}\xff", false},
      {"\xff{\"email\":\"a@b.co\"}", false},
      {"{\"email\":\"a@b.co\"\xc3\xa9}", false},
      {"{\"email\":\"a@b.co\",\xc3\x28\"first_name\":\"A\"}", false},
      // Whitespace JSON does not have (form feed, vertical tab, NBSP), and a NUL byte.
      {"\f{\"email\":\"a@b.co\"}", false},
      {"{\"email\":\"a@b.co\"}\v", false},
      {"{\"email\"\f:\"a@b.co\"}", false},
      {"{\"email\":\xc2\xa0\"a@b.co\"}", false},
      {std::string("{\"email\":\"a@b.co\"}\0", 17), false},
      // Bad JSON and other shapes.
      {R"({"email":"a@b.co",})", false},
      {R"({"email":"a@b.co"} x)", false},
      {R"({"email":"a@b.co")", false},
      {R"({"email":"a@b.co)", false},
      {R"({"email" "a@b.co"})", false},
      {R"({"email":"a@b.co"}})", false},
      {R"({"email":"a@b.co""first_name":"A"})", false},
      {R"({,})", false},
      {R"({"email":'a@b.co'})", false},
      {R"([])", false},
      {R"("x")", false},
      {"true", false},
      {"null", false},
      {"", false},
      {"   ", false},
      {"{", false},
  };
  for (const auto& [body, takes] : rows) {
    const auto shown = body.substr(0, 120);
    auto direct = plain_claim_body(body);
    EXPECT_EQ(direct.has_value(), takes) << shown;
    auto parsed = parse_claim_body(body);
    auto doc = parse_body(body);
    auto via_document = doc ? parse_claim_input(*doc) : doc.error();
    ASSERT_EQ(bool(parsed), bool(via_document)) << shown;
    if (direct) {
      ASSERT_TRUE(via_document) << shown;
    }
    if (!parsed) {
      EXPECT_EQ(parsed.error().field, via_document.error().field) << shown;
      EXPECT_EQ(parsed.error().message, via_document.error().message) << shown;
      continue;
    }
    for (const service::claim_input* in : {&*parsed, direct ? &*direct : &*parsed}) {
      EXPECT_EQ(in->email, via_document->email) << shown;
      EXPECT_EQ(in->first_name, via_document->first_name) << shown;
      EXPECT_EQ(in->last_name, via_document->last_name) << shown;
      EXPECT_EQ(in->learner_token, via_document->learner_token) << shown;
      EXPECT_EQ(in->answers, via_document->answers) << shown;
    }
  }
}

TEST(Dto, ClaimAnswerTextIsTheDocumentsDump) {
  service::claim_result r;
  EXPECT_EQ(to_json_text(r), dumped(r));  // no claim: null
  EXPECT_EQ(to_json_text(r), "null");

  domain::claim_record c;
  c.claim_id_ = *uuid::parse("0f8fad5b-d9cb-469f-a165-70867728950e");
  c.learner_id_ = *uuid::parse("7c9e6679-7425-40de-944b-e07fc1f90ae7");
  c.claimed_at_ = timestamp(std::chrono::microseconds(1'764'590'400'123'456));
  r.claim = c;
  r.invite_id = *uuid::parse("16fd2706-8baf-433b-82eb-8c7fada847da");
  r.learner_token = "lt1.AbC-_09xyz";
  EXPECT_EQ(to_json_text(r), dumped(r));  // no tracks, no expiry

  r.claim->anonymous_ = true;
  r.claim->access_expires_at_ = timestamp(std::chrono::microseconds(0));
  r.claim->claimed_at_ = timestamp(std::chrono::seconds(253'402'300'799));  // 9999-12-31
  // Tokens and track ids are ASCII in practice; quotes, controls, non-ASCII and invalid
  // UTF-8 still come out as nlohmann writes them.
  r.learner_token = std::string("q\"b\\s/\x01\x1f\n\t\x7f", 11);
  service::claimed_track t1{"k8s-basics", true, std::nullopt, std::nullopt};
  service::claimed_track t2{"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", false,
                            timestamp(std::chrono::microseconds(1'764'590'400'000'001)),
                            std::int64_t{0}};
  service::claimed_track t3{"bad \xff\xc3 utf8", true, std::nullopt,
                            std::numeric_limits<std::int64_t>::min()};
  service::claimed_track t4{"", false, std::nullopt, std::numeric_limits<std::int64_t>::max()};
  r.tracks = {t1, t2, t3, t4};
  EXPECT_EQ(to_json_text(r), dumped(r));
  EXPECT_EQ(json::parse(to_json_text(r))["tracks"][1]["track_id"],
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  r.tracks = {t3};
  EXPECT_EQ(to_json_text(r), dumped(r));
}

TEST(Dto, ApiKeyRolesExcludeTheOperator) {
  EXPECT_TRUE(parse_api_key_request(json::parse(R"({"role":"professor","name":"p"})")));
  EXPECT_FALSE(parse_api_key_request(json::parse(R"({"role":"operator"})")));
  EXPECT_FALSE(parse_api_key_request(json::parse(R"({"name":"p"})")));
}

TEST(Dto, ApiKeyEmailIsOptionalAndNullMeansNone) {
  auto with = parse_api_key_request(json::parse(R"({"role":"admin","name":"a","email":"a@b.io"})"));
  ASSERT_TRUE(with);
  EXPECT_EQ(with->email, "a@b.io");  // validated by the domain
  auto null = parse_api_key_request(json::parse(R"({"role":"admin","name":"a","email":null})"));
  ASSERT_TRUE(null);
  EXPECT_FALSE(null->email);
  auto absent = parse_api_key_request(json::parse(R"({"role":"admin","name":"a"})"));
  ASSERT_TRUE(absent);
  EXPECT_FALSE(absent->email);
  auto mistyped = parse_api_key_request(json::parse(R"({"role":"admin","name":"a","email":5})"));
  ASSERT_FALSE(mistyped);
  EXPECT_EQ(mistyped.error().field, "email");
}

TEST(Dto, NotifyOnClaimIsABooleanDefaultingToOff) {
  auto base = json::parse(R"({"title":"t","tracks":[{"track_id":"k"}]})");
  auto off = parse_invite_draft(base);
  ASSERT_TRUE(off);
  EXPECT_FALSE(off->notify_on_claim_);
  base["notify_on_claim"] = true;
  auto on = parse_invite_draft(base);
  ASSERT_TRUE(on);
  EXPECT_TRUE(on->notify_on_claim_);
  auto patch = parse_invite_patch(json::parse(R"({"notify_on_claim":false})"));
  ASSERT_TRUE(patch);
  EXPECT_EQ(patch->notify_on_claim_, false);
  EXPECT_FALSE(parse_invite_patch(json::parse(R"({"title":"x"})"))->notify_on_claim_);
  auto bad = parse_invite_patch(json::parse(R"({"notify_on_claim":"yes"})"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "notify_on_claim");
}

TEST(ErrorTable, EveryDomainCodeHasItsOwnStatus) {
  for (int c = static_cast<int>(domain::errc::invalid_request);
       c <= static_cast<int>(domain::errc::notify_email_missing); ++c) {
    auto code = domain::to_string(static_cast<domain::errc>(c));
    unsigned status = status_for(code);
    EXPECT_GE(status, 400u) << code;
    EXPECT_LT(status, 500u) << code << " would surface as a server error";
  }
  for (const char* code : {"unauthorized", "rate_limited", "idempotency_key_reused", "conflict"}) {
    EXPECT_LT(status_for(code), 500u) << code;
  }
  EXPECT_EQ(status_for("unavailable"), 503u);
}

}  // namespace
}  // namespace passage::api::v1
