#include "transport/names.h"

namespace agent::names {

bool valid_char(char c) { return c > ' ' && c < 0x7f && c != '#'; }

namespace {
bool all_valid(std::string_view s) {
  for (char c : s)
    if (!valid_char(c)) return false;
  return true;
}
std::string explain(std::string_view what, std::string_view s, size_t max) {
  if (s.empty()) return std::string(what) + " is empty";
  if (s.size() > max)
    return std::string(what) + " is " + std::to_string(s.size()) + " bytes, the limit is " +
           std::to_string(max);
  if (!all_valid(s))
    return std::string(what) +
           " has a forbidden character (allowed: printable ASCII except space and '#')";
  return {};
}
}  // namespace

bool valid_private_name(std::string_view n) {
  return !n.empty() && n.size() <= kMaxPrivateName && all_valid(n);
}
bool valid_daemon_name(std::string_view n) {
  return !n.empty() && n.size() <= kMaxDaemonName && all_valid(n);
}
bool valid_group(std::string_view g) { return !g.empty() && g.size() <= kMaxGroupName && all_valid(g); }

bool is_private_group(std::string_view g) {
  if (g.size() < 4 || g.size() > kMaxGroupName || g[0] != '#') return false;
  size_t second = g.find('#', 1);
  if (second == std::string_view::npos) return false;
  return valid_private_name(g.substr(1, second - 1)) && valid_daemon_name(g.substr(second + 1));
}
std::string private_group(std::string_view name, std::string_view daemon) {
  std::string s;
  s.reserve(2 + name.size() + daemon.size());
  s += '#';
  s += name;
  s += '#';
  s += daemon;
  return s;
}
std::string_view private_group_daemon(std::string_view g) {
  if (!is_private_group(g)) return {};
  return g.substr(g.find('#', 1) + 1);
}
bool valid_destination(std::string_view g) { return valid_group(g) || is_private_group(g); }

std::string explain_private_name(std::string_view n) {
  auto e = explain("private name", n, kMaxPrivateName);
  return e.empty() ? "private name is valid" : e;
}
std::string explain_group(std::string_view g) {
  if (!g.empty() && g[0] == '#') {
    if (is_private_group(g)) return "group name is valid";
    return "group name starts with '#' but is not a private group of the form #name#daemon";
  }
  auto e = explain("group name", g, kMaxGroupName);
  return e.empty() ? "group name is valid" : e;
}

}  // namespace agent::names
