"""Name rules of the client protocol (the same as transport/names.cpp, i.e. Spread's limits).

All names are printable ASCII (0x21-0x7e) without '#':

* private name: 1-10 bytes (what a client connects with)
* daemon name: 1-19 bytes
* group: 1-31 bytes
* private group: ``#name#daemon``, at most 31 bytes, the address of one connection
"""

from __future__ import annotations

from .errors import IllegalGroup, IllegalName

MAX_GROUP_NAME = 31
MAX_PRIVATE_NAME = 10
MAX_DAEMON_NAME = 19


def _valid_chars(s: str) -> bool:
    return all("!" <= c <= "~" and c != "#" for c in s)


def valid_private_name(name: object) -> bool:
    return isinstance(name, str) and 0 < len(name) <= MAX_PRIVATE_NAME and _valid_chars(name)


def valid_daemon_name(name: object) -> bool:
    return isinstance(name, str) and 0 < len(name) <= MAX_DAEMON_NAME and _valid_chars(name)


def valid_group(group: object) -> bool:
    """A public group name."""
    return isinstance(group, str) and 0 < len(group) <= MAX_GROUP_NAME and _valid_chars(group)


def is_private_group(group: object) -> bool:
    """``#name#daemon`` with both parts valid."""
    if not isinstance(group, str) or not 4 <= len(group) <= MAX_GROUP_NAME or group[0] != "#":
        return False
    second = group.find("#", 1)
    if second < 0:
        return False
    return valid_private_name(group[1:second]) and valid_daemon_name(group[second + 1:])


def valid_destination(group: object) -> bool:
    """What a multicast may address: a public group or a private group."""
    return valid_group(group) or is_private_group(group)


def private_group(name: str, daemon: str) -> str:
    return "#%s#%s" % (name, daemon)


def _explain(what: str, s: object, limit: int) -> str:
    if not isinstance(s, str):
        return "%s must be a str, not %s" % (what, type(s).__name__)
    if not s:
        return "%s is empty" % what
    if len(s) > limit:
        return "%s %r is %d characters, the limit is %d" % (what, s, len(s), limit)
    return ("%s %r has a forbidden character (allowed: printable ASCII except space and '#')"
            % (what, s))


def check_private_name(name: object) -> str:
    if not valid_private_name(name):
        raise IllegalName(_explain("private name", name, MAX_PRIVATE_NAME), subject=str(name))
    return name  # type: ignore[return-value]


def check_group(group: object) -> str:
    """A public group (join, leave)."""
    if valid_group(group):
        return group  # type: ignore[return-value]
    if isinstance(group, str) and group.startswith("#"):
        raise IllegalGroup("group name %r starts with '#': private groups cannot be joined or left"
                           % group, subject=group)
    raise IllegalGroup(_explain("group name", group, MAX_GROUP_NAME), subject=str(group))


def check_destination(group: object) -> str:
    """A public or private group (multicast)."""
    if valid_destination(group):
        return group  # type: ignore[return-value]
    if isinstance(group, str) and group.startswith("#"):
        raise IllegalGroup("group name %r starts with '#' but is not a private group of the form "
                           "#name#daemon" % group, subject=group)
    raise IllegalGroup(_explain("group name", group, MAX_GROUP_NAME), subject=str(group))


def check_private_group(group: object) -> str:
    if not is_private_group(group):
        raise IllegalGroup("%r is not a private group of the form #name#daemon" % (group,),
                           subject=str(group))
    return group  # type: ignore[return-value]
