#include "api/router.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <stdexcept>

namespace passage::api {

struct router::node {
  struct entry {
    http::verb method;
    std::string method_name;
    std::string route;
    std::vector<std::string> param_names;
    handler h;
  };

  std::map<std::string, std::unique_ptr<node>, std::less<>> literals;
  std::unique_ptr<node> param;
  std::vector<entry> entries;

  const entry* find(http::verb m) const {
    for (const auto& e : entries) {
      if (e.method == m) return &e;
    }
    // HEAD is answered by the GET handler (the server sends the headers only).
    if (m == http::verb::head) return find(http::verb::get);
    return nullptr;
  }
};

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

bool is_param_name(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  if (path == "/") return out;
  out.reserve(static_cast<std::size_t>(std::count(path.begin(), path.end(), '/')));
  path.remove_prefix(1);
  while (true) {
    auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

// A request target's path segments, percent-decoded, and its query (without the '?').
// Segments without a '%' (nearly all) are views of the target itself; the others are
// views of their decoded text in `decoded`, whose room is reserved up front so that
// adding one never moves the others. Not copyable or movable: it holds views into itself.
struct split_target {
  split_target() = default;
  split_target(const split_target&) = delete;
  split_target& operator=(const split_target&) = delete;

  std::vector<std::string_view> segments;
  std::vector<std::string> decoded;
  std::string_view query;
};

// Splits and decodes `target` into `out` (views into `target`, which must outlive it);
// the problem when the target is refused.
std::optional<problem> decode_target(std::string_view target, split_target& out) {
  if (target.empty() || target.front() != '/') {
    return invalid_request("the request target must be an absolute path");
  }
  if (target.find('#') != std::string_view::npos) {
    return invalid_request("the request target must not contain a fragment");
  }
  auto q = target.find('?');
  std::string_view path = target.substr(0, q);
  if (q != std::string_view::npos) out.query = target.substr(q + 1);
  if (path == "/") return std::nullopt;
  const auto count = static_cast<std::size_t>(std::count(path.begin(), path.end(), '/'));
  out.segments.reserve(count);
  if (path.find('%') != std::string_view::npos) out.decoded.reserve(count);
  path.remove_prefix(1);
  while (true) {
    auto slash = path.find('/');
    std::string_view segment = path.substr(0, slash);
    if (segment.find('%') != std::string_view::npos) {
      auto decoded = percent_decode(segment, false);
      if (!decoded) return invalid_request("malformed percent-encoding in the path");
      if (decoded->find('/') != std::string::npos) {
        return invalid_request("encoded '/' in a path segment");
      }
      out.decoded.push_back(std::move(*decoded));
      segment = out.decoded.back();
    }
    if (has_control(segment)) return invalid_request("control character in the path");
    if (!is_valid_utf8(segment)) return invalid_request("the path is not valid UTF-8");
    if (segment == "." || segment == "..") {
      return invalid_request("'.' and '..' segments are not allowed");
    }
    out.segments.push_back(segment);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return std::nullopt;
}

}  // namespace

router::router() : root_(std::make_unique<node>()) {}
router::~router() = default;

// Depth-first, literal before parameter. With `method` set, finds a node that
// has that method; without, any node that has routes.
const router::node* router::find_node(const node* n, const std::vector<std::string_view>& segs,
                                      std::size_t i, const http::verb* method,
                                      std::vector<std::string_view>& captured) {
  if (i == segs.size()) {
    if (n->entries.empty()) return nullptr;
    if (method && !n->find(*method)) return nullptr;
    return n;
  }
  if (auto it = n->literals.find(segs[i]); it != n->literals.end()) {
    if (auto* r = find_node(it->second.get(), segs, i + 1, method, captured)) return r;
  }
  if (n->param && !segs[i].empty()) {
    captured.push_back(segs[i]);
    if (auto* r = find_node(n->param.get(), segs, i + 1, method, captured)) return r;
    captured.pop_back();
  }
  return nullptr;
}

router& router::add(http::verb method, std::string_view path_template, handler h) {
  auto bad = [&](const std::string& why) {
    return std::invalid_argument("router: bad route template '" + std::string(path_template) +
                                 "': " + why);
  };
  if (path_template.empty() || path_template.front() != '/') throw bad("must start with '/'");
  if (path_template.find('?') != std::string_view::npos) throw bad("no query allowed");
  if (!h) throw bad("empty handler");
  if (filter_) h = filter_(method, path_template, std::move(h));
  node* n = root_.get();
  std::vector<std::string> names;
  for (std::string_view seg : split_path(path_template)) {
    if (seg.empty()) throw bad("empty segment");
    if (seg.front() == '{') {
      if (seg.back() != '}' || !is_param_name(seg.substr(1, seg.size() - 2))) {
        throw bad("parameter must read {name}");
      }
      std::string name(seg.substr(1, seg.size() - 2));
      if (std::find(names.begin(), names.end(), name) != names.end()) {
        throw bad("duplicate parameter " + name);
      }
      names.push_back(std::move(name));
      if (!n->param) n->param = std::make_unique<node>();
      n = n->param.get();
    } else {
      if (seg.find_first_of("{}%") != std::string_view::npos || seg == "." || seg == "..") {
        throw bad("literal segment with reserved characters");
      }
      auto& child = n->literals[std::string(seg)];
      if (!child) child = std::make_unique<node>();
      n = child.get();
    }
  }
  if (n->find(method)) throw bad("duplicate route for this method");
  std::string method_name(http::to_string(method));
  routes_.push_back(method_name + " " + std::string(path_template));
  n->entries.push_back(
      {method, std::move(method_name), std::string(path_template), std::move(names), std::move(h)});
  return *this;
}

result<route_match, problem> router::match(http::verb method, std::string_view target) const {
  split_target split;
  if (auto refused = decode_target(target, split)) return fail(std::move(*refused));
  auto query = parse_query(split.query);
  if (!query) return fail(std::move(query).error());

  std::vector<std::string_view> captured;
  captured.reserve(split.segments.size());
  const node* n = find_node(root_.get(), split.segments, 0, &method, captured);
  if (!n) {
    captured.clear();
    const node* any = find_node(root_.get(), split.segments, 0, nullptr, captured);
    if (!any) return fail(make_problem("not_found", "no route for this path"));
    std::string allow;
    for (const auto& e : any->entries) {
      if (!allow.empty()) allow += ", ";
      allow += e.method_name;
      if (e.method == http::verb::get) allow += ", HEAD";
    }
    problem p = make_problem("method_not_allowed", "allowed methods: " + allow);
    p.headers.emplace_back("Allow", allow);
    p.extra["route"] = any->entries.front().route;
    return fail(std::move(p));
  }
  const node::entry* e = n->find(method);
  route_match m;
  m.target = &e->h;
  m.route = e->route;
  for (std::size_t i = 0; i < e->param_names.size() && i < captured.size(); ++i) {
    m.params.add(e->param_names[i], std::string(captured[i]));
  }
  m.query = std::move(*query);
  return m;
}

void router::dispatch(const request& req, request_context& ctx, responder respond) const {
  std::string_view target(req.target().data(), req.target().size());
  auto m = match(req.method(), target);
  if (!m) {
    problem p = std::move(m).error();
    // "/console/" for "/console": a page address typed or linked with a trailing slash is
    // redirected to the route it names (GET and HEAD only; the query is kept).
    if (p.status == 404 && (req.method() == http::verb::get || req.method() == http::verb::head)) {
      auto q = target.find('?');
      std::string_view path = target.substr(0, q);
      if (path.size() > 1 && path.back() == '/' && !path.starts_with("//")) {
        std::string canonical(path.substr(0, path.size() - 1));
        if (q != std::string_view::npos) canonical += target.substr(q);
        if (match(req.method(), canonical)) {
          response res{http::status::permanent_redirect, req.version()};
          res.set(http::field::location, canonical);
          res.set(http::field::cache_control, "no-store");
          respond(std::move(res));
          return;
        }
      }
    }
    if (p.extra.contains("route")) {
      ctx.route = p.extra["route"].get<std::string>();
      p.extra.erase("route");
    }
    respond(problem_response(p));
    return;
  }
  ctx.route = std::move(m->route);
  ctx.params = std::move(m->params);
  ctx.query = std::move(m->query);
  (*m->target)(req, ctx, std::move(respond));
}

handler router::as_handler() const {
  return [this](const request& req, request_context& ctx, responder respond) {
    dispatch(req, ctx, std::move(respond));
  };
}

std::vector<std::string> router::routes() const { return routes_; }

std::optional<std::string> router::route_of(http::verb method, std::string_view target) const {
  auto m = match(method, target);
  if (!m) return std::nullopt;
  return std::string(http::to_string(method)) + " " + m->route;
}

std::optional<std::string> percent_decode(std::string_view in, bool plus_as_space) {
  if (in.find_first_of(plus_as_space ? "%+" : "%") == std::string_view::npos) {
    return std::string(in);  // nothing encoded: most path segments
  }
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool is_valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    std::uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) {
      return false;  // overlong
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

result<param_map, problem> parse_query(std::string_view query) {
  param_map out;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    auto name = percent_decode(pair.substr(0, eq), true);
    auto value = percent_decode(
        eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), true);
    if (!name || !value) return fail(invalid_request("malformed percent-encoding in the query"));
    if (name->find('\0') != std::string::npos || value->find('\0') != std::string::npos) {
      return fail(invalid_request("NUL character in the query"));
    }
    if (!is_valid_utf8(*name) || !is_valid_utf8(*value)) {
      return fail(invalid_request("the query is not valid UTF-8"));
    }
    if (name->empty()) continue;
    out.add(std::move(*name), std::move(*value));
  }
  return out;
}

result<std::optional<std::int64_t>, problem> query_int(const param_map& query,
                                                       std::string_view name, std::int64_t min,
                                                       std::int64_t max) {
  auto v = query.get(name);
  if (!v) return std::optional<std::int64_t>{};
  std::int64_t n = 0;
  auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (v->empty() || ec != std::errc() || ptr != v->data() + v->size() || n < min || n > max) {
    std::string message =
        "must be an integer between " + std::to_string(min) + " and " + std::to_string(max);
    return fail(invalid_request(
        "query parameter '" + std::string(name) + "' " + message,
        nlohmann::json::array({{{"field", std::string(name)}, {"message", message}}})));
  }
  return std::optional<std::int64_t>{n};
}

}  // namespace passage::api
