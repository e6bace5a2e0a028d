#include <catch2/catch.hpp>

#include "transport/names.h"

using namespace agent::names;

TEST_CASE("private names follow Spread's limits", "[names]") {
  CHECK(valid_private_name("alice"));
  CHECK(valid_private_name("0123456789"));
  CHECK_FALSE(valid_private_name(""));
  CHECK_FALSE(valid_private_name("01234567890"));
  CHECK_FALSE(valid_private_name("a b"));
  CHECK_FALSE(valid_private_name("a#b"));
  CHECK_FALSE(valid_private_name(std::string("a\0b", 3)));
  CHECK_FALSE(valid_private_name("caf\xc3\xa9"));
  CHECK(explain_private_name("").find("empty") != std::string::npos);
  CHECK(explain_private_name("01234567890").find("limit is 10") != std::string::npos);
}

TEST_CASE("group names and private groups", "[names]") {
  CHECK(valid_group("chat"));
  CHECK(valid_group(std::string(31, 'g')));
  CHECK_FALSE(valid_group(std::string(32, 'g')));
  CHECK_FALSE(valid_group(""));
  CHECK_FALSE(valid_group("#a#d1"));
  CHECK(is_private_group("#a#d1"));
  CHECK(private_group("a", "d1") == "#a#d1");
  CHECK(private_group_daemon("#a#d1") == "d1");
  CHECK(private_group_daemon("chat").empty());
  CHECK_FALSE(is_private_group("#a#"));
  CHECK_FALSE(is_private_group("##d1"));
  CHECK_FALSE(is_private_group("#a#d#x"));
  CHECK(valid_destination("chat"));
  CHECK(valid_destination("#a#d1"));
  CHECK_FALSE(valid_destination("#nope"));
}
