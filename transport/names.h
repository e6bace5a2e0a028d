// Rules for the names that travel in the client protocol. They match Spread's limits so that a
// group name always fits Spread's MAX_GROUP_NAME (32 bytes with the terminating NUL).
#pragma once

#include <string>
#include <string_view>

namespace agent::names {

constexpr size_t kMaxGroupName = 31;    // any group name, private groups included
constexpr size_t kMaxPrivateName = 10;  // the name a client connects with (Spread's limit)
constexpr size_t kMaxDaemonName = 19;   // so "#" + private + "#" + daemon fits kMaxGroupName

// Printable ASCII without space and '#'; '#' marks private groups.
bool valid_char(char c);
bool valid_private_name(std::string_view name);
bool valid_daemon_name(std::string_view name);
// A public group: 1..31 valid characters.
bool valid_group(std::string_view group);
// "#name#daemon" with both parts valid.
bool is_private_group(std::string_view group);
std::string private_group(std::string_view name, std::string_view daemon);
// The daemon part of a private group ("" if group is not private).
std::string_view private_group_daemon(std::string_view group);
// A valid public group or a valid private group: what a multicast may address.
bool valid_destination(std::string_view group);
// Why a name was refused, for error messages.
std::string explain_private_name(std::string_view name);
std::string explain_group(std::string_view group);

}  // namespace agent::names
