// The man page agentd.toml(5) and the keys the daemon knows cannot drift apart: every key of
// the code's table (config_keys) and of the example file is documented, and every key the
// page documents is one the loader takes.
#include <catch2/catch.hpp>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <unistd.h>

#include "agentd/config.h"
#include "agentd/config_keys.h"

using namespace agent::daemon;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The keys the page lists: ".TP" then ".B section.key".
std::set<std::string> man_keys(const std::string& page) {
  std::set<std::string> keys;
  std::istringstream in(page);
  std::regex item(R"(\.B ([a-z_]+\.[a-z_]+))");
  bool after_tp = false;
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (after_tp && std::regex_match(line, m, item)) keys.insert(m[1]);
    after_tp = line == ".TP";
  }
  return keys;
}

// The keys of the example file, set or shown commented out ("# key = value"), in its plain
// tables; the fields of array tables ([[ring.daemons]], [[access]]...) are the page's
// sub-items.
std::set<std::string> example_keys(const std::string& text) {
  std::set<std::string> keys;
  std::istringstream in(text);
  std::regex table(R"(#?\s*\[([a-z_.]+)\]\s*(#.*)?)"), array(R"(#?\s*\[\[([a-z_.]+)\]\]\s*(#.*)?)");
  std::regex set(R"(([a-z_]+)\s*=.*)");
  std::regex shown(R"(#\s*([a-z_]+) = ("[^"]*"|[0-9.]+|\[.*\]|true|false)\s*(#.*)?)");
  std::string section;
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_match(line, m, array)) section.clear();
    else if (std::regex_match(line, m, table)) section = m[1];
    else if (!section.empty() &&
             (std::regex_match(line, m, set) || std::regex_match(line, m, shown)))
      keys.insert(section + "." + m[1].str());
  }
  return keys;
}

}  // namespace

TEST_CASE("man: agentd.toml(5) lists every key the daemon and the example file know, and "
          "only those", "[man]") {
  std::string page = slurp(AGENT_MAN_DIR "/agentd.toml.5");
  REQUIRE(!page.empty());
  auto documented = man_keys(page);
  REQUIRE(documented.size() > 40);

  std::set<std::string> known;
  for (auto& k : config_keys::known_keys()) known.insert(k);
  auto in_example = example_keys(slurp(AGENT_EXAMPLE_CONFIG));
  // The example shows keys of every table, [persist]'s among them.
  REQUIRE(in_example.count("daemon.log_level"));
  REQUIRE(in_example.count("persist.durability"));
  known.insert(in_example.begin(), in_example.end());
  for (auto& k : known) {
    INFO("key " << k << " is not in man/agentd.toml.5");
    CHECK(documented.count(k) == 1);
  }

  // Every documented key is one the loader takes: a value of the wrong type (a table) is
  // refused as such, never as an unknown key.
  char path[] = "/tmp/agentd-man-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  for (auto& k : documented) {
    auto dot = k.find('.');
    std::ofstream(path) << "[" << k.substr(0, dot) << "]\n" << k.substr(dot + 1) << " = {}\n";
    Config cfg;
    std::string err = load_config_file(path, cfg);
    INFO("documented key " << k << ": " << err);
    CHECK(!err.empty());
    CHECK(err.find("unknown") == std::string::npos);
  }
  ::unlink(path);
}
