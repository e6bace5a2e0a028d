// The shared reader of private files (the ring key, the clients' secrets).
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <string>

#include "transport/private_file.h"

using agent::transport::PrivateFileRules;
using agent::transport::read_private_file;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/agent-private-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::remove((path + "/f").c_str());
    rmdir(path.c_str());
  }
};

}  // namespace

TEST_CASE("a private file is read only when it is regular, private and within its size",
          "[privatefile]") {
  TempDir d;
  std::string file = d.path + "/f";
  std::ofstream(file) << "0123456789";
  PrivateFileRules rules;
  rules.contents = "the thing";
  rules.max_bytes = 10;
  std::string text = "stale";

  REQUIRE(chmod(file.c_str(), 0640) == 0);
  auto r = read_private_file(file, rules, text);
  CHECK(r.error == "mode 0640 lets group or others at the thing: chmod 600 " + file);
  CHECK_FALSE(r.open_failed);
  rules.owner_only = false;
  CHECK(read_private_file(file, rules, text).error.empty());
  rules.owner_only = true;

  REQUIRE(chmod(file.c_str(), 0600) == 0);
  r = read_private_file(file, rules, text);
  CHECK(r.error.empty());
  CHECK(text == "0123456789");

  rules.max_bytes = 9;  // never more than max_bytes, even without a size rule
  CHECK(read_private_file(file, rules, text).error == "10 bytes, more than 9");
  CHECK(text.empty());
  rules.max_bytes = 10;
  rules.size_error = [](uint64_t n) { return n == 32 ? std::string() : std::to_string(n) + " != 32"; };
  CHECK(read_private_file(file, rules, text).error == "10 != 32");

  CHECK(read_private_file(d.path, rules, text).error == "not a regular file");
  r = read_private_file(d.path + "/missing", rules, text);
  CHECK(r.open_failed);
  CHECK(r.error == "No such file or directory");
}
