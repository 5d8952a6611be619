#include "common/time_format.h"

#include <cstdio>

namespace passage {
namespace {

bool digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    char c = s[i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

}  // namespace

void append_rfc3339(std::string& out, timestamp t) {
  using namespace std::chrono;
  auto day = floor<days>(t);
  year_month_day ymd{day};
  const int year = int(ymd.year());
  auto tod = t - day;
  auto h = duration_cast<hours>(tod);
  auto m = duration_cast<minutes>(tod - h);
  auto s = duration_cast<seconds>(tod - h - m);
  auto us = (tod - h - m - s).count();
  char buf[40];
  std::size_t n = 0;
  if (year < 0 || year > 9999) {  // rare: the general (slower) formatting
    int w = std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02lld", year,
                          unsigned(ymd.month()), unsigned(ymd.day()), int(h.count()),
                          int(m.count()), static_cast<long long>(s.count()));
    if (us != 0) {
      w += std::snprintf(buf + w, sizeof buf - std::size_t(w), ".%06lld",
                         static_cast<long long>(us));
    }
    n = std::size_t(w);
  } else {  // digits written directly: event encoding formats a dozen times per claim
    auto put = [&](long long x, int width) {
      for (int i = width - 1; i >= 0; --i) {
        buf[n + std::size_t(i)] = char('0' + x % 10);
        x /= 10;
      }
      n += std::size_t(width);
    };
    put(year, 4);
    buf[n++] = '-';
    put(unsigned(ymd.month()), 2);
    buf[n++] = '-';
    put(unsigned(ymd.day()), 2);
    buf[n++] = 'T';
    put(h.count(), 2);
    buf[n++] = ':';
    put(m.count(), 2);
    buf[n++] = ':';
    put(s.count(), 2);
    if (us != 0) {
      buf[n++] = '.';
      put(us, 6);
    }
  }
  buf[n++] = 'Z';
  out.append(buf, n);
}

std::string format_rfc3339(timestamp t) {
  std::string out;
  append_rfc3339(out, t);
  return out;
}

std::optional<timestamp> parse_rfc3339(std::string_view s) {
  using namespace std::chrono;
  int y, mo, d, h, mi, sec;
  if (!digits(s, 0, 4, y) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't') || !digits(s, 11, 2, h) ||
      s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, sec)) {
    return std::nullopt;
  }
  if (h > 23 || mi > 59 || sec > 59) return std::nullopt;
  year_month_day ymd{year{y}, month{unsigned(mo)}, day{unsigned(d)}};
  if (!ymd.ok()) return std::nullopt;
  size_t pos = 19;
  std::int64_t micros = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t start = pos;
    std::int64_t scale = 100000;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      micros += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start || pos - start > 9) return std::nullopt;
  }
  if (pos >= s.size()) return std::nullopt;
  std::int64_t offset_minutes = 0;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int oh, om;
    if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !digits(s, pos + 4, 2, om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_minutes = (oh * 60 + om) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  timestamp t = sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} + microseconds{micros};
  return t - minutes{offset_minutes};
}

}  // namespace passage
