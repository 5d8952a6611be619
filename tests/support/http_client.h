#pragma once
// A small blocking HTTP/1.1 client over loopback for end-to-end tests: one
// keep-alive connection, JSON helpers. Not for production use.
//
//   http_client c(port);
//   auto r = c.post("/v1/invites", R"({"title":"x"})", {{"Authorization", "Bearer k"}});
//   EXPECT_EQ(r.status, 201);
//   auto body = r.json();

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <nlohmann/json.hpp>

#include <map>
#include <string>

namespace passage::testing {

struct http_reply {
  unsigned status = 0;
  std::map<std::string, std::string> headers;
  std::string body;

  nlohmann::json json() const {
    auto j = nlohmann::json::parse(body, nullptr, false);
    return j.is_discarded() ? nlohmann::json() : j;
  }
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class http_client {
 public:
  explicit http_client(unsigned short port) : port_(port), socket_(ioc_) {}

  using headers = std::map<std::string, std::string>;

  http_reply request(boost::beast::http::verb method, const std::string& target,
                     const std::string& body = {}, const headers& extra = {}) {
    namespace http = boost::beast::http;
    for (int attempt = 0; attempt < 2; ++attempt) {
      try {
        if (!socket_.is_open()) {
          boost::asio::ip::tcp::resolver resolver(ioc_);
          boost::asio::connect(socket_, resolver.resolve("127.0.0.1", std::to_string(port_)));
        }
        http::request<http::string_body> req{method, target, 11};
        req.set(http::field::host, "127.0.0.1");
        if (!body.empty()) req.set(http::field::content_type, "application/json");
        for (const auto& [k, v] : extra) req.set(k, v);
        req.body() = body;
        req.prepare_payload();
        http::write(socket_, req);
        boost::beast::flat_buffer buffer;
        http::response_parser<http::string_body> parser;
        parser.body_limit(64u << 20);
        http::read(socket_, buffer, parser);
        auto res = parser.release();
        http_reply out;
        out.status = res.result_int();
        for (const auto& f : res)
          out.headers[std::string(f.name_string())] = std::string(f.value());
        out.body = res.body();
        if (!res.keep_alive()) close();
        return out;
      } catch (const boost::system::system_error&) {
        close();  // a closed keep-alive connection: reconnect once
        if (attempt == 1) throw;
      }
    }
    return {};
  }

  http_reply get(const std::string& target, const headers& h = {}) {
    return request(boost::beast::http::verb::get, target, {}, h);
  }
  http_reply post(const std::string& target, const std::string& body, const headers& h = {}) {
    return request(boost::beast::http::verb::post, target, body, h);
  }
  http_reply patch(const std::string& target, const std::string& body, const headers& h = {}) {
    return request(boost::beast::http::verb::patch, target, body, h);
  }
  http_reply put(const std::string& target, const std::string& body, const headers& h = {}) {
    return request(boost::beast::http::verb::put, target, body, h);
  }
  http_reply del(const std::string& target, const headers& h = {}) {
    return request(boost::beast::http::verb::delete_, target, {}, h);
  }

  void close() {
    boost::system::error_code ec;
    socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

 private:
  unsigned short port_;
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::socket socket_;
};

}  // namespace passage::testing
