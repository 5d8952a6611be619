#include "web/static_assets.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace passage::web {
namespace {

namespace http = api::http;

class static_assets_test : public ::testing::Test {
 protected:
  static_assets_test() { register_routes(r_); }

  api::response get(const std::string& target, std::optional<std::string> if_none_match = {}) {
    api::request req{http::verb::get, target, 11};
    if (if_none_match) req.set(http::field::if_none_match, *if_none_match);
    api::request_context ctx;
    std::optional<api::response> got;
    r_.dispatch(req, ctx,
                api::responder::capture([&](api::response res) { got = std::move(res); }));
    EXPECT_TRUE(got.has_value()) << target;
    return got ? std::move(*got) : api::response{};
  }

  api::router r_;
};

TEST_F(static_assets_test, serves_each_embedded_file_with_its_content_type) {
  struct expectation {
    const char* file;
    const char* type;
  };
  for (auto [file, type] : {expectation{"console.js", "text/javascript; charset=utf-8"},
                            expectation{"learner.js", "text/javascript; charset=utf-8"},
                            expectation{"api.js", "text/javascript; charset=utf-8"},
                            expectation{"passage.css", "text/css; charset=utf-8"}}) {
    auto res = get(asset_url(file));
    EXPECT_EQ(res.result(), http::status::ok) << file;
    EXPECT_EQ(res[http::field::content_type], type) << file;
    EXPECT_EQ(res["X-Content-Type-Options"], "nosniff") << file;
    auto a = find_asset(file);
    ASSERT_TRUE(a) << file;
    EXPECT_EQ(res.body(), a->body) << file;
    EXPECT_FALSE(res.body().empty()) << file;
  }
}

TEST_F(static_assets_test, versioned_urls_are_cached_for_good_with_a_content_etag) {
  auto res = get(asset_url("console.js"));
  EXPECT_EQ(res[http::field::cache_control], "public, max-age=31536000, immutable");
  std::string etag(res[http::field::etag]);
  ASSERT_GE(etag.size(), 10u);
  EXPECT_EQ(etag.front(), '"');
  EXPECT_EQ(etag.back(), '"');
  EXPECT_NE(etag, std::string(get(asset_url("learner.js"))[http::field::etag]))
      << "different files have different validators";
  EXPECT_EQ(asset_url("console.js"), "/assets/" + std::string(assets_version()) + "/console.js");
}

TEST_F(static_assets_test, a_matching_if_none_match_gets_304_without_a_body) {
  auto first = get(asset_url("passage.css"));
  std::string etag(first[http::field::etag]);
  auto again = get(asset_url("passage.css"), etag);
  EXPECT_EQ(again.result(), http::status::not_modified);
  EXPECT_TRUE(again.body().empty());
  EXPECT_EQ(again[http::field::etag], etag);
  EXPECT_EQ(again[http::field::cache_control], "public, max-age=31536000, immutable");

  auto listed = get(asset_url("passage.css"), "\"0000\", " + etag);
  EXPECT_EQ(listed.result(), http::status::not_modified);
  auto stale = get(asset_url("passage.css"), "\"00000000000000000000\"");
  EXPECT_EQ(stale.result(), http::status::ok);
  EXPECT_EQ(stale.body(), first.body());
}

TEST_F(static_assets_test, unknown_files_and_other_versions_are_404) {
  auto unknown = get(asset_url("nope.js"));
  EXPECT_EQ(unknown.result(), http::status::not_found);
  EXPECT_EQ(unknown[http::field::content_type], "application/problem+json");
  EXPECT_EQ(get("/assets/000000000000/console.js").result(), http::status::not_found);
  EXPECT_EQ(get("/assets/console.js").result(), http::status::not_found);
  EXPECT_EQ(get("/assets/" + std::string(assets_version()) + "/").result(),
            http::status::not_found);
}

TEST_F(static_assets_test, path_traversal_never_reaches_a_file) {
  const std::string base = "/assets/" + std::string(assets_version()) + "/";
  for (const std::string& target :
       {base + "../console.js", base + "..%2Fconsole.js", base + "%2e%2e/CMakeLists.txt",
        base + "..%2F..%2Fembed_assets.cmake", base + "static%2Fconsole.js",
        base + "%2e%2e%2fserver.secret", base + "console.js%00.css"}) {
    auto res = get(target);
    EXPECT_TRUE(res.result() == http::status::bad_request ||
                res.result() == http::status::not_found)
        << target << " -> " << res.result_int();
    EXPECT_EQ(res[http::field::content_type], "application/problem+json") << target;
  }
  EXPECT_FALSE(find_asset("../embed_assets.cmake"));
  EXPECT_FALSE(find_asset("static/console.js"));
  EXPECT_FALSE(find_asset(""));
}

TEST_F(static_assets_test, console_page_loads_versioned_assets_under_a_strict_policy) {
  auto res = get("/console");
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res[http::field::content_type], "text/html; charset=utf-8");
  EXPECT_NE(res.body().find("src=\"" + asset_url("console.js") + "\""), std::string::npos);
  EXPECT_NE(res.body().find("href=\"" + asset_url("passage.css") + "\""), std::string::npos);
  std::string csp(res["Content-Security-Policy"]);
  EXPECT_NE(csp.find("default-src 'none'"), std::string::npos);
  EXPECT_NE(csp.find("script-src 'self'"), std::string::npos);
  EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos);
  EXPECT_EQ(res.body().find("<script>"), std::string::npos) << "no inline script";
  EXPECT_EQ(res.body().find("<style"), std::string::npos) << "no inline style";
  EXPECT_NE(res.body().find("aria-live"), std::string::npos);
}

}  // namespace
}  // namespace passage::web
